package agent

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ParseLifetime reads a key lifetime the way ssh-agent -t and ssh-add -t
// do (sshd_config TIME FORMATS): a number of seconds, or numbers with the
// units s, m, h, d, w, concatenated ("1h30m", "90", "2d").
func ParseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty lifetime")
	}
	var total, n int64
	digits := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= '0' && ch <= '9' {
			if n > (math.MaxInt32-int64(ch-'0'))/10 {
				return 0, fmt.Errorf("lifetime %q is too large", s)
			}
			n = n*10 + int64(ch-'0')
			digits = true
			continue
		}
		if !digits {
			return 0, fmt.Errorf("invalid lifetime %q", s)
		}
		var unit int64
		switch ch {
		case 's', 'S':
			unit = 1
		case 'm', 'M':
			unit = 60
		case 'h', 'H':
			unit = 3600
		case 'd', 'D':
			unit = 86400
		case 'w', 'W':
			unit = 604800
		default:
			return 0, fmt.Errorf("invalid lifetime %q: unknown unit %q", s, ch)
		}
		total += n * unit
		if total > math.MaxInt32 {
			return 0, fmt.Errorf("lifetime %q is too large", s)
		}
		n, digits = 0, false
	}
	total += n
	if total > math.MaxInt32 {
		return 0, fmt.Errorf("lifetime %q is too large", s)
	}
	return time.Duration(total) * time.Second, nil
}
