package pin

import "github.com/sesame-ssh/sesame/agent"

// The userauth request parser lives in the agent package, which checks
// destination constraints with it; these are its names for the policy.
const (
	MethodPublickey = agent.MethodPublickey
	MethodHostbound = agent.MethodHostbound
)

// UserauthRequest is agent.UserauthRequest.
type UserauthRequest = agent.UserauthRequest

// ErrNotUserauth is agent.ErrNotUserauth.
var ErrNotUserauth = agent.ErrNotUserauth

// ParseUserauthRequest is agent.ParseUserauthRequest.
func ParseUserauthRequest(data []byte) (*UserauthRequest, error) {
	return agent.ParseUserauthRequest(data)
}
