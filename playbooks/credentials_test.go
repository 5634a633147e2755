package playbooks

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/kubeadm"
)

// TestTokenSourceLooksUpInParallel: joins asking at once look the token up
// at once (the lookups meet at a barrier, which lookups made one after
// another under a lock never reach), and a token gone or about to expire
// is replaced once, every join getting the replacement.
func TestTokenSourceLooksUpInParallel(t *testing.T) {
	tok := kubeadm.Token{ID: "abcdef", Secret: "0123456789abcdef"}
	stored := func(ttl time.Duration) runtime.Object {
		return storedForm(kubeadm.BootstrapSecret(tok, ttl, time.Now(), kubeadm.TokenDescription))
	}
	const joins = 5
	for _, tc := range []struct {
		name     string
		objects  []runtime.Object
		replaced bool
	}{
		{"valid for an hour", []runtime.Object{stored(time.Hour)}, false},
		{"expiring in 30 s", []runtime.Object{stored(30 * time.Second)}, true},
		{"gone", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeClient := fake.NewClientset(tc.objects...)
			var arrived sync.WaitGroup
			arrived.Add(joins)
			all := make(chan struct{})
			go func() { arrived.Wait(); close(all) }()
			client := secretGetHook{fakeClient, func() {
				arrived.Done()
				select {
				case <-all:
				case <-time.After(5 * time.Second):
					t.Error("a lookup waited 5 s for the others: the joins look up one after another")
				}
			}}
			source := &tokenSource{token: tok, ttl: time.Hour}
			p := probe{&Session{Redactor: exec.NewRedactor()}}
			got := make([]kubeadm.Token, joins)
			var wg sync.WaitGroup
			for i := range joins {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					if got[i], err = source.valid(context.Background(), p, client); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			creates := 0
			for _, a := range fakeClient.Actions() {
				if a.GetVerb() == "create" {
					creates++
				}
			}
			if want := map[bool]int{false: 0, true: 1}[tc.replaced]; creates != want {
				t.Errorf("%d tokens created for %d joins, want %d", creates, joins, want)
			}
			for _, g := range got {
				if g != got[0] {
					t.Fatalf("the joins got different tokens: %v", got)
				}
			}
			if replaced := got[0] != tok; replaced != tc.replaced {
				t.Errorf("replaced = %v, want %v", replaced, tc.replaced)
			}
		})
	}
}

// secretGetHook is a client whose Secret lookups call hook first.
type secretGetHook struct {
	kubernetes.Interface
	hook func()
}

func (c secretGetHook) CoreV1() corev1client.CoreV1Interface {
	return secretGetHookCore{c.Interface.CoreV1(), c.hook}
}

type secretGetHookCore struct {
	corev1client.CoreV1Interface
	hook func()
}

func (c secretGetHookCore) Secrets(namespace string) corev1client.SecretInterface {
	return secretGetHookSecrets{c.CoreV1Interface.Secrets(namespace), c.hook}
}

type secretGetHookSecrets struct {
	corev1client.SecretInterface
	hook func()
}

func (s secretGetHookSecrets) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error) {
	s.hook()
	return s.SecretInterface.Get(ctx, name, opts)
}
