package playbooks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

// cloudInitJoins renders node's user-data as `fleet cloud-init` does, runs
// it on the fresh host with the harness's own interpreter of write_files
// and runcmd (no fleet, no SSH from fleet after this point), and waits for
// the Node to be Ready. It returns the document for the caller's checks;
// none of notInDoc may appear in it.
func cloudInitJoins(t *testing.T, c *sim.Cluster, inv *inventory.Inventory, kubeconfig, node string, notInDoc ...string) []byte {
	t.Helper()
	var out output
	s, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: out.event})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ud, err := playbooks.CloudInit(context.Background(), s, node, playbooks.CloudInitOptions{TokenTTL: 10 * time.Minute})
	if err != nil {
		t.Fatalf("cloud-init %s: %v\n%s", node, err, out.buf.String())
	}
	doc := string(ud.Document)
	if !strings.HasPrefix(doc, "#cloud-config\n") || !strings.Contains(doc, "SECRET") {
		t.Errorf("user-data lacks the header or the warning:\n%s", firstLine(doc))
	}
	if got := out.buf.String(); s.Redactor.String(got) != got {
		t.Error("a secret of the user-data appears in the run's output")
	}
	for _, secret := range notInDoc {
		if secret != "" && strings.Contains(doc, secret) {
			t.Error("the user-data holds a secret it must not")
		}
	}
	if err := c.RunCloudConfig(node, ud.Document); err != nil {
		t.Fatalf("running the user-data on %s: %v", node, err)
	}
	client := clientFor(t, kubeconfig)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, err := client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return ud.Document
				}
			}
		}
		if time.Now().After(deadline) {
			log, _ := c.Exec(node, "tail", "-n", "20", "/var/log/kubelet.log")
			t.Fatalf("%s did not become Ready after its user-data ran (last: %v); kubelet log:\n%s", node, err, log)
		}
		time.Sleep(time.Second)
	}
}
