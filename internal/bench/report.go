//go:build linux

package main

import (
	"fmt"
	"io"
	"sort"
	"time"
)

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// report prints one comparison line. The ratio is of medians, which a
// shared, noisy machine disturbs less than means.
func report(w io.Writer, r result) {
	ms, mp := median(r.Sesame), median(r.Peer)
	ratio := float64(ms) / float64(mp)
	verdict := ""
	if r.Target > 0 {
		verdict = fmt.Sprintf("  target ≤ %.1f×: ", r.Target)
		if ratio <= r.Target {
			verdict += "met"
		} else {
			verdict += "NOT met"
		}
	}
	fmt.Fprintf(w, "%-28s sesame median %8s (mean %8s)   %s median %8s (mean %8s)   ratio %.2f×%s   [n=%d]\n",
		r.Task, round(ms), round(mean(r.Sesame)), r.PeerName, round(mp), round(mean(r.Peer)), ratio, verdict, len(r.Sesame))
	if r.Note != "" && r.Target > 0 && ratio > r.Target {
		fmt.Fprintf(w, "%28s %s\n", "", r.Note)
	}
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
