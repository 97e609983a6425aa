package testbed

import (
	"fmt"
	"os"
	"sync"
)

// T is the part of testing.TB the test bed uses. *testing.T and *testing.B
// satisfy it; Standalone provides one for programs (make demo, make bench)
// that start the same servers outside `go test`.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Program is a T for command-line programs: a fatal error panics with a
// *Failure (recover it at the top of main to clean up and print it), and
// Close runs the cleanups in reverse order.
type Program struct {
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

// Failure is what Program panics with on Fatal.
type Failure struct{ Msg string }

func (f *Failure) Error() string { return f.Msg }

// Standalone returns a Program.
func Standalone() *Program { return &Program{} }

func (p *Program) Helper()           {}
func (p *Program) Fatal(args ...any) { panic(&Failure{fmt.Sprint(args...)}) }
func (p *Program) Fatalf(format string, args ...any) {
	panic(&Failure{fmt.Sprintf(format, args...)})
}
func (p *Program) Skipf(format string, args ...any) {
	panic(&Failure{"prerequisite missing: " + fmt.Sprintf(format, args...)})
}
func (p *Program) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (p *Program) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

func (p *Program) TempDir() string {
	d, err := os.MkdirTemp("", "sesame-bed-")
	if err != nil {
		p.Fatalf("temp dir: %v", err)
	}
	p.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Close runs the cleanups, newest first.
func (p *Program) Close() {
	p.mu.Lock()
	c := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}
