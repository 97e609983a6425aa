package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// ErrNoAskpass refuses a confirm-before-use key when nobody can be asked.
var ErrNoAskpass = errors.New("key needs confirmation but SSH_ASKPASS is not set")

// confirm asks the user, through $SSH_ASKPASS with SSH_ASKPASS_PROMPT=confirm
// as ssh-agent does, whether e may sign. Exit status 0 means yes. Prompts
// are asked one at a time so that dialogs do not pile up.
func (s *Server) confirm(e *entry) error {
	askpass := s.opts.Askpass
	if askpass == "" {
		askpass = os.Getenv("SSH_ASKPASS")
	}
	if askpass == "" {
		return ErrNoAskpass
	}
	prompt := fmt.Sprintf("Allow use of key %s?\nKey fingerprint %s.", e.comment, s.opts.FingerprintHash.Fingerprint(PlainKey(e.pub)))
	s.confirmMu.Lock()
	defer s.confirmMu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.confirmTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, askpass, prompt)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS_PROMPT=confirm")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("not confirmed: %w", err)
	}
	return nil
}
