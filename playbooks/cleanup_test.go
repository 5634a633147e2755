package playbooks

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fleetops/fleet/internal/kubeadm"
)

func TestLeftovers(t *testing.T) {
	token := func(id, description string) runtime.Object {
		// As the API server stores it: stringData becomes data.
		return storedForm(kubeadm.BootstrapSecret(kubeadm.Token{ID: id, Secret: "0123456789abcdef"}, time.Hour, time.Now(), description))
	}
	certs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: kubeadmCertsSecret, Namespace: metav1.NamespaceSystem}}
	cases := []struct {
		name       string
		objects    []runtime.Object
		wantTokens []string
		wantCerts  bool
		wantKept   []string // token IDs still there after the delete
	}{
		{name: "nothing to clean", objects: []runtime.Object{token("users1", "by hand")}, wantKept: []string{"users1"}},
		{name: "fleet's token, the certificates and their proxy go; a user's token stays",
			objects:    []runtime.Object{token("fleet1", kubeadm.TokenDescription), token("proxy1", kubeadm.CertsProxyDescription), certs, token("users1", "by hand")},
			wantTokens: []string{"fleet1", "proxy1"}, wantCerts: true, wantKept: []string{"users1"}},
		{name: "a proxy whose certificates are gone goes too",
			objects:    []runtime.Object{token("proxy0", kubeadm.CertsProxyDescription)},
			wantTokens: []string{"proxy0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			client := fake.NewSimpleClientset(c.objects...)
			left, err := findLeftovers(ctx, client)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(left.tokens)
			if !slices.Equal(left.tokens, c.wantTokens) || left.certs != c.wantCerts {
				t.Fatalf("leftovers = %+v, want tokens %v, certs %v", left, c.wantTokens, c.wantCerts)
			}
			if err := left.delete(ctx, client); err != nil {
				t.Fatal(err)
			}
			after, err := findLeftovers(ctx, client)
			if err != nil || !after.empty() {
				t.Fatalf("after delete: %+v %v", after, err)
			}
			list, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, s := range list.Items {
				kept = append(kept, string(s.Data["token-id"]))
			}
			if !slices.Equal(kept, c.wantKept) {
				t.Errorf("kept %v, want %v", kept, c.wantKept)
			}
		})
	}
}
