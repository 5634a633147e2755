package playbooks

// ApplyLB lets the integration tests feed the load-balancer step a config
// the renderer would never make.
var ApplyLB = applyLB

// ReadFiles lets the integration tests read files as the checks do.
var ReadFiles = (*Session).readFiles
