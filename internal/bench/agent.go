//go:build linux

package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// Agent benchmark (issue 3): sesame agent against OpenSSH ssh-agent, each
// holding the same 100 ed25519 keys. Requests are sent as raw frames and
// replies read without parsing, so the client costs the same for both and
// the numbers are the agents'.
const (
	benchKeys     = 100
	benchDuration = 3 * time.Second
	benchLists    = 2000
	benchConns    = 16
)

type benchAgentProc struct {
	name string
	sock string
	cmd  *exec.Cmd
}

func benchAgent() error {
	dir, err := os.MkdirTemp("", "sesame-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	sesameBin, err := findSesame(dir)
	if err != nil {
		return err
	}
	sshAgent, err := exec.LookPath("ssh-agent")
	if err != nil {
		return fmt.Errorf("ssh-agent not found: %w", err)
	}
	agents := []*benchAgentProc{
		{name: "sesame", sock: filepath.Join(dir, "sesame.sock")},
		{name: "ssh-agent", sock: filepath.Join(dir, "openssh.sock")},
	}
	agents[0].cmd = exec.Command(sesameBin, "agent", "-D", "-a", agents[0].sock)
	agents[0].cmd.Env = append(os.Environ(), "SESAME_HOME="+filepath.Join(dir, "home"))
	agents[1].cmd = exec.Command(sshAgent, "-D", "-a", agents[1].sock)
	for _, a := range agents {
		a.cmd.Stdout, a.cmd.Stderr = io.Discard, io.Discard
		a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := a.cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", a.name, err)
		}
		defer func() { a.cmd.Process.Kill(); a.cmd.Wait() }()
		if err := waitAgentSocket(a.sock); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
	}

	keys := make([]ed25519.PrivateKey, benchKeys)
	pubs := make([]ssh.PublicKey, benchKeys)
	for i := range keys {
		_, keys[i], _ = ed25519.GenerateKey(rand.Reader)
		pubs[i], _ = ssh.NewPublicKey(keys[i].Public())
	}
	for _, a := range agents {
		c, err := net.Dial("unix", a.sock)
		if err != nil {
			return err
		}
		ag := xagent.NewClient(c)
		for i, k := range keys {
			if err := ag.Add(xagent.AddedKey{PrivateKey: k, Comment: fmt.Sprintf("bench-key-%03d", i)}); err != nil {
				c.Close()
				return fmt.Errorf("%s: add key: %w", a.name, err)
			}
		}
		c.Close()
	}
	// Sign with the last key added: ssh-agent searches its list in order.
	signReq := frameMsg(append([]byte{13}, ssh.Marshal(struct {
		Key, Data []byte
		Flags     uint32
	}{pubs[benchKeys-1].Marshal(), make([]byte, 150), 0})...))
	listReq := frameMsg([]byte{11})

	type result struct {
		sign1, sign16 float64
		listP50       time.Duration
		rssKB         int
	}
	res := map[string]result{}
	for _, a := range agents {
		var r result
		if r.sign1, err = throughput(a.sock, signReq, 1); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		if r.sign16, err = throughput(a.sock, signReq, benchConns); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		if r.listP50, err = listLatency(a.sock, listReq); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		res[a.name] = r
	}
	// Idle RSS after the work above and a moment of rest.
	time.Sleep(2 * time.Second)
	for _, a := range agents {
		r := res[a.name]
		r.rssKB = rssKB(a.cmd.Process.Pid)
		res[a.name] = r
	}

	s, o := res["sesame"], res["ssh-agent"]
	fmt.Printf("agent: %d ed25519 keys, %v per throughput run\n", benchKeys, benchDuration)
	fmt.Printf("%-28s %14s %14s %10s %s\n", "", "sesame", "ssh-agent", "ratio", "target")
	fmt.Printf("%-28s %12.0f/s %12.0f/s %9.2fx %s\n", "sign, 1 connection", s.sign1, o.sign1, s.sign1/o.sign1, ">= 10x")
	fmt.Printf("%-28s %12.0f/s %12.0f/s %9.2fx %s\n", fmt.Sprintf("sign, %d connections", benchConns), s.sign16, o.sign16, s.sign16/o.sign16, ">= 20x")
	fmt.Printf("%-28s %14v %14v %9.2fx %s\n", "list p50", s.listP50, o.listP50, float64(s.listP50)/float64(o.listP50), "<= 0.33x")
	fmt.Printf("%-28s %12dkB %12dkB %9.2fx %s\n", "idle RSS", s.rssKB, o.rssKB, float64(s.rssKB)/float64(o.rssKB), "<= 2x")
	return nil
}

// findSesame uses $SESAME_BIN, then bin/sesame (what make bench builds),
// else builds the command.
func findSesame(dir string) (string, error) {
	if p := os.Getenv("SESAME_BIN"); p != "" {
		return p, nil
	}
	if fi, err := os.Stat("bin/sesame"); err == nil && fi.Mode()&0o111 != 0 {
		return filepath.Abs("bin/sesame")
	}
	p := filepath.Join(dir, "sesame")
	if out, err := exec.Command("go", "build", "-o", p, "./cmd/sesame").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sesame: %w\n%s", err, out)
	}
	return p, nil
}

func waitAgentSocket(sock string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func frameMsg(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// client sends requests one at a time and reads each reply whole. Replies
// are read through a buffer, so that a reply costs one read(2) rather than
// one for its length and one for its body: the harness should spend as
// little as it can around the agent it measures, and it treats both agents
// alike.
type client struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

func dialClient(sock string) (*client, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	return &client{c: c, r: bufio.NewReaderSize(c, 64*1024)}, nil
}

// roundTrip sends one request and reads one whole reply.
func (cl *client) roundTrip(req []byte) error {
	if _, err := cl.c.Write(req); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(cl.r, hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if cap(cl.buf) < n {
		cl.buf = make([]byte, n)
	}
	cl.buf = cl.buf[:n]
	if _, err := io.ReadFull(cl.r, cl.buf); err != nil {
		return err
	}
	if n == 0 || cl.buf[0] == 5 {
		return errors.New("agent refused the request")
	}
	return nil
}

// throughput counts completed requests per second over conns connections
// each sending one request at a time.
func throughput(sock string, req []byte, conns int) (float64, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	stop := start.Add(benchDuration)
	for i := 0; i < conns; i++ {
		cl, err := dialClient(sock)
		if err != nil {
			return 0, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.c.Close()
			n := int64(0)
			for time.Now().Before(stop) {
				if err := cl.roundTrip(req); err != nil {
					errs <- err
					return
				}
				n++
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}

func listLatency(sock string, req []byte) (time.Duration, error) {
	cl, err := dialClient(sock)
	if err != nil {
		return 0, err
	}
	defer cl.c.Close()
	lat := make([]time.Duration, 0, benchLists)
	for i := 0; i < benchLists; i++ {
		t0 := time.Now()
		if err := cl.roundTrip(req); err != nil {
			return 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

func rssKB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
