package playbooks

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/kubeadm"
)

// TestTokenSourceAsksTheAPIOnlyWhenItMustKnow: a token whose expiry fleet
// knows (it made the token) costs no API call, however many joins ask; one
// of unknown expiry is looked up once; one about to expire, or gone, is
// replaced.
func TestTokenSourceAsksTheAPIOnlyWhenItMustKnow(t *testing.T) {
	tok := kubeadm.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	now := time.Now()
	stored := func(ttl time.Duration) runtime.Object {
		return storedForm(kubeadm.BootstrapSecret(tok, ttl, now, kubeadm.TokenDescription))
	}
	for _, tc := range []struct {
		name     string
		source   *tokenSource
		objects  []runtime.Object
		wantGets int
		replaced bool
	}{
		{"made by this run an hour ago, 2 h TTL", newTokenSource(tok, 2*time.Hour, now.Add(-time.Hour)), []runtime.Object{stored(time.Hour)}, 0, false},
		{"made with TTL 0: never expires", newTokenSource(tok, 0, now), []runtime.Object{stored(0)}, 0, false},
		{"expiry unknown: looked up once", newTokenSource(tok, time.Hour, time.Time{}), []runtime.Object{stored(time.Hour)}, 1, false},
		{"made long ago, expiring now: looked up, replaced", newTokenSource(tok, time.Hour, now.Add(-time.Hour)), []runtime.Object{stored(30 * time.Second)}, 1, true},
		{"gone: replaced", newTokenSource(tok, time.Hour, time.Time{}), nil, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(tc.objects...)
			p := probe{&Session{Redactor: exec.NewRedactor()}}
			var got []kubeadm.Token
			for range 5 { // five joins asking, one after another
				g, err := tc.source.valid(context.Background(), p, client)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, g)
			}
			gets, creates := 0, 0
			for _, a := range client.Actions() {
				switch a.GetVerb() {
				case "get":
					gets++
				case "create":
					creates++
				}
			}
			if gets != tc.wantGets {
				t.Errorf("%d API lookups for 5 joins, want %d", gets, tc.wantGets)
			}
			if replaced := got[0] != tok; replaced != tc.replaced || creates != map[bool]int{false: 0, true: 1}[tc.replaced] {
				t.Errorf("replaced %v with %d tokens created, want replaced %v (one created)", replaced, creates, tc.replaced)
			}
			for _, g := range got[1:] {
				if g != got[0] {
					t.Errorf("the joins got different tokens: %v", got)
				}
			}
		})
	}
}
