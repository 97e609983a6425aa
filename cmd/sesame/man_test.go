package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// helpFlag is one flag line of `--help`: "  -c, --cache string   …" or
// "      --json   …".
var helpFlag = regexp.MustCompile(`(?m)^\s+(?:(-[A-Za-z0-9]), )?(--[a-z0-9-]+)`)

// manText is the roff source of a page with the escapes that hide flag
// spellings undone (\- is a hyphen, \fB…\fP are fonts).
func manText(b []byte) string {
	return strings.NewReplacer(`\-`, "-", `\fB`, "", `\fP`, "", `\fR`, "", `\fI`, "").Replace(string(b))
}

// Every flag that `sesame CMD --help` prints is on CMD's manual page, with
// its short form, and the pages of the Kerberos and agent commands have
// the EXIT STATUS, ENVIRONMENT and FILES sections. The pages are generated
// from the command tree at build time (make man), so this is what keeps
// them complete: a flag added to a command shows up on its page, and one
// that the generator would miss fails here.
func TestManPagesHaveEveryFlag(t *testing.T) {
	dir := t.TempDir()
	bin := sesameBin(t)
	// The generator is built with -tags mangen only (man.go).
	gen := filepath.Join(t.TempDir(), "sesame-mangen")
	if out, err := exec.Command("go", "build", "-tags", "mangen", "-o", gen, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags mangen: %v\n%s", err, out)
	}
	cmd := exec.Command(gen, "gen-man", dir)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-man: %v\n%s", err, out)
	}
	wireOnce.Do(func() { wireUsage(rootCmd) })
	var cmds []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c == rootCmd || c.IsAvailableCommand() {
			cmds = append(cmds, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCmd)
	if len(cmds) < 15 {
		t.Fatalf("only %d commands in the tree", len(cmds))
	}
	for _, c := range cmds {
		path := strings.Fields(c.CommandPath())[1:]
		name := strings.Join(append([]string{"sesame"}, path...), "-") + ".1"
		page, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("no page for %q: %v", c.CommandPath(), err)
			continue
		}
		text := manText(page)
		help, err := exec.Command(bin, append(path, "--help")...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", c.CommandPath(), err, help)
		}
		flags := helpFlag.FindAllStringSubmatch(string(help), -1)
		if len(flags) == 0 {
			t.Errorf("%s --help lists no flags:\n%s", c.CommandPath(), help)
		}
		for _, f := range flags {
			want := f[2]
			if f[1] != "" {
				want = f[1] + ", " + f[2]
			}
			if !strings.Contains(text, want) {
				t.Errorf("%s: %q of --help is not on the page", name, want)
			}
		}
		if !strings.Contains(text, ".SH ENVIRONMENT") {
			t.Errorf("%s has no ENVIRONMENT section", name)
		}
	}
	for _, name := range []string{"sesame", "sesame-kinit", "sesame-klist", "sesame-kdestroy", "sesame-renew", "sesame-agent", "sesame-lock", "sesame-unlock", "sesame-status"} {
		page, err := os.ReadFile(filepath.Join(dir, name+".1"))
		if err != nil {
			t.Fatal(err)
		}
		text := manText(page)
		last := -1
		// In the order of MIT's and OpenSSH's pages, after the options.
		for _, sec := range []string{".SH OPTIONS", ".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES", ".SH SEE ALSO"} {
			i := strings.Index(text, sec)
			if i < 0 && !(name == "sesame" && sec == ".SH OPTIONS") {
				t.Errorf("%s.1: no %q", name, sec)
			} else if i >= 0 && i < last {
				t.Errorf("%s.1: %q out of order", name, sec)
			}
			last = max(last, i)
		}
	}
	// The released binary has no generator.
	if out, _ := exec.Command(bin, "gen-man", dir).CombinedOutput(); !strings.Contains(string(out), "unknown command") {
		t.Errorf("sesame gen-man without -tags mangen: %s", out)
	}
}
