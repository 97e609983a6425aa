package pin

import (
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent"
)

// HostReport explains what the policy does for one host key that
// known_hosts lists for a name: for `sesame doctor HOST`.
type HostReport struct {
	HostKey   ssh.PublicKey // nil for a certificate authority entry
	CA        bool          // HostKey is a @cert-authority key: certificates it signs are trusted
	Revoked   bool
	Names     []Name           // every name known_hosts gives this key
	Declared  []Pin            // declared pins that apply (by name or host key)
	Learned   []Learned        // learned pins for this host key
	Offered   []agent.Identity // what a bound connection to this host would list
	Reason    string           // why those keys, in a sentence
	Source    string           // known_hosts file and line
	Unpinned  bool             // no pins apply: at most MaxOffer keys are tried
	MaxOffer  int
	NotListed bool // the name is not in known_hosts at all (HostKey nil)
	// Rotation is the search for the key an unpinned server accepts,
	// when one is under way (or over: Exhausted).
	Rotation *Rotation
}

// Explain reports, for each host key known_hosts lists for name ("host",
// "[host]:port" or "host:port"), which of ids the agent would offer and
// why. A name that known_hosts does not list gets one report with
// NotListed set: pins by name cannot apply before ssh has recorded the
// host key. user is the remote user ("" when not known): pins and the
// rotation are per account.
func (p *Policy) Explain(name, user string, ids []agent.Identity) ([]HostReport, error) {
	n, err := ParseName(name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.refreshLocked()
	kh := p.kh
	var keys []*khEntry
	for i := range kh.entries {
		e := &kh.entries[i]
		if e.marker != markRevoked && e.matchName(n) {
			keys = append(keys, e)
		}
	}
	p.mu.Unlock()

	var out []HostReport
	for _, e := range keys {
		r := HostReport{HostKey: e.key, CA: e.marker == markCA, Source: fmt.Sprintf("%s:%d", e.file, e.line), MaxOffer: p.opt.MaxOffer}
		if r.CA {
			// No host key to test: say which declared pins the name has.
			p.mu.Lock()
			r.Revoked = kh.isRevoked(e.key)
			for _, i := range p.pins.match("", []Name{n}) {
				r.Declared = append(r.Declared, p.pins.pins[i])
			}
			p.mu.Unlock()
			r.Reason = "hosts presenting a certificate from this authority with " + n.Host + " among its principals get the pins of " + n.String()
			out = append(out, r)
			continue
		}
		p.mu.Lock()
		p.hostLocked(e.key, []Name{n}) // the name may be hashed: make it known first
		p.mu.Unlock()
		c := &agent.ConnInfo{Binds: []agent.Bind{{HostKey: e.key}}}
		r.Offered = p.OfferAs(c, user, ids)
		p.mu.Lock()
		h := p.hostLocked(e.key, nil)
		if rot := p.rotationLocked(rotKey{h.fp, user}); rot != nil {
			r.Rotation = p.describeRotationLocked(rot, h, user, ids)
		}
		r.Revoked, r.Names = h.revoked, h.names
		for _, i := range h.declared {
			if p.pins.pins[i].matchUser(user) {
				r.Declared = append(r.Declared, p.pins.pins[i])
			}
		}
		for _, i := range p.lidx.byHost[h.fp] {
			if user != "" && p.learned[i].User != user {
				continue
			}
			r.Learned = append(r.Learned, p.learned[i])
		}
		p.mu.Unlock()
		switch {
		case r.Revoked:
			r.Reason = "the host key is @revoked in known_hosts: nothing is offered or signed"
		case len(r.Declared) > 0:
			r.Reason = "declared pins apply: only their keys are offered"
		case len(r.Learned) > 0 && len(r.Offered) > 0:
			r.Reason = "learned pins apply: only keys this host accepted before are offered"
		case r.Rotation != nil && r.Rotation.Exhausted:
			r.Unpinned = true
			r.Reason = fmt.Sprintf("no pins apply, and the server accepted none of the %d keys it was offered: no key is offered any more (it may take only passwords or one-time codes)", len(r.Rotation.Tried))
		case r.Rotation != nil:
			r.Unpinned = true
			r.Reason = fmt.Sprintf("no pins apply; the server accepted none of the %d keys offered so far: the next login offers the next %d keys not yet tried, most recently successful elsewhere first", len(r.Rotation.Tried), p.opt.MaxOffer)
		default:
			r.Unpinned = true
			r.Reason = fmt.Sprintf("no pins apply: at most %d keys not pinned elsewhere are offered, most recently successful first", p.opt.MaxOffer)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		r := HostReport{NotListed: true, Unpinned: true, MaxOffer: p.opt.MaxOffer}
		p.mu.Lock()
		for _, i := range p.pins.match("", []Name{n}) {
			r.Declared = append(r.Declared, p.pins.pins[i])
		}
		p.mu.Unlock()
		r.Reason = fmt.Sprintf("%s is not in known_hosts: until ssh records its host key, pins by name cannot apply and at most %d keys are offered", n, p.opt.MaxOffer)
		out = append(out, r)
	}
	return out, nil
}

// OfferAs is Offer for a connection whose client logs in as user.
func (p *Policy) OfferAs(c *agent.ConnInfo, user string, ids []agent.Identity) []agent.Identity {
	if len(c.Binds) == 0 || !chainForwards(c) {
		return p.Offer(c, ids)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	st := &connState{probed: true}
	if user != "" {
		st.peer = &PeerConfig{User: user}
	}
	return p.offerLocked(c, st, ids)
}

// describeRotationLocked fills in what the next login would be offered.
func (p *Policy) describeRotationLocked(rot *Rotation, h *hostInfo, user string, ids []agent.Identity) *Rotation {
	c := *rot
	c.Tried = append([]string(nil), rot.Tried...)
	st := &connState{probed: true}
	cs := []cand{}
	for _, id := range ids {
		if fp := p.fpLocked(id.Key); p.permitsLocked(h, user, fp) == permitted {
			cs = append(cs, cand{id, fp})
		}
	}
	c.Loaded = len(cs)
	_ = p.chooseLocked(st, h, user, cs, nil)
	c.Next = append([]string(nil), st.offered...)
	return &c
}

// TwoFactor reports whether a 2fa pin covers name ("host", "[host]:port"
// or "host:port") for user ("" matches every pin).
func (p *Policy) TwoFactor(name, user string) bool {
	n, err := ParseName(name)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	for i := range p.pins.pins {
		q := &p.pins.pins[i]
		if q.TwoFactor && q.HostKey == "" && q.matchUser(user) && q.Hosts.Match(n) {
			return true
		}
	}
	return false
}
