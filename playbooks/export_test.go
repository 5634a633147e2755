package playbooks

import "context"

// ApplyLB lets the integration tests feed the load-balancer step a config
// the renderer would never make.
func ApplyLB(ctx context.Context, s *Session, host string, config []byte) error {
	return applyLB(ctx, s.remote(), s.Inv, host, config)
}

// ReadFiles lets the integration tests read files as the checks do.
var ReadFiles = (*Session).readFiles
