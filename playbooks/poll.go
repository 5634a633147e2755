package playbooks

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
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

// apiBackoff paces apiRetry: about six seconds in all.
var apiBackoff = wait.Backoff{Steps: 6, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1}

// apiRetry repeats an API call that failed on the way rather than being
// refused: the load balancer closes a connection idle past its
// proxy_timeout, and Go's client does not resend a POST on a connection
// found closed; an apiserver just restarting answers 503 or resets.
// Callers make their calls safe to repeat (a create that finds its own
// object done counts as done).
func apiRetry(ctx context.Context, call func(context.Context) error) error {
	return retry.OnError(apiBackoff, func(err error) bool { return ctx.Err() == nil && transientAPIError(err) },
		func() error { return call(ctx) })
}

func transientAPIError(err error) bool {
	return utilnet.IsProbableEOF(err) || utilnet.IsConnectionReset(err) || utilnet.IsConnectionRefused(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsTimeout(err)
}
