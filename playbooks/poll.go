package playbooks

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// errPollTimeout is what pollUntil returns when its own limit passed (the
// run's context still alive): the caller says what it was waiting for.
var errPollTimeout = errors.New("timed out")

// pollUntil asks done at once and then every interval until it says true,
// returns an error, or timeout passes (errPollTimeout). A cancelled run
// ends it with the run's error. Every wait of the playbooks goes through
// it: for a load balancer, an API, a certificate, a kubelet to stop.
func pollUntil(ctx context.Context, interval, timeout time.Duration, done func(context.Context) (bool, error)) error {
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, done)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case wait.Interrupted(err):
		return errPollTimeout
	}
	return err
}
