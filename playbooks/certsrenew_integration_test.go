package playbooks_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/playbooks"
)

// testCertsRenew, on the shared HA cluster: master1's API server
// certificate is renewed by kubeadm itself for 9 days only (kubeadm's
// certificateValidityPeriod), as a cluster near its expiry has it; certs
// check names it under 10 days; fleet certs renew brings every
// certificate back to about a year, one master at a time, master1's API
// server serves the new certificate (its pod restarted), and every node
// stays Ready.
func testCertsRenew(t *testing.T) {
	c := applyCluster
	shorten := `set -e
kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get cm kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' > /tmp/short.yaml
echo 'certificateValidityPeriod: 216h0m0s' >> /tmp/short.yaml
kubeadm certs renew apiserver --config /tmp/short.yaml`
	if out, err := c.Exec("master1", "sh", "-c", shorten); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	ctx := context.Background()
	var out output
	found, err := playbooks.CertsCheck(ctx, applySession(t, &out))
	if err != nil {
		t.Fatal(err)
	}
	var under []string
	for _, cert := range playbooks.CertsUnder(found, time.Now(), 10) {
		under = append(under, cert.Host+"/"+cert.Name)
	}
	if strings.Join(under, ",") != "master1/apiserver" {
		t.Fatalf("certificates under 10 days: %v, want master1/apiserver", under)
	}
	// apply and plan warn of it, from what preflight reads anyway.
	var planned output
	if _, err := playbooks.Plan(ctx, applySession(t, &planned), playbooks.DefaultApplyOptions()); err != nil {
		t.Fatalf("plan: %v\n%s", err, planned.buf.String())
	}
	warning := regexp.MustCompile(`(?m)^note preflight (master\d) certificates expire within 30 days: apiserver \([89] days\): run fleet certs renew `)
	if got := warning.FindAllStringSubmatch(planned.buf.String(), -1); len(got) != 1 || got[0][1] != "master1" {
		t.Errorf("plan's warnings %v, want one for master1's apiserver:\n%s", got, planned.buf.String())
	}

	// The cluster's own kubeconfig, as the CLI's default: the later
	// subtests' applies must find it current.
	kubeconfig := applyOptions().Kubeconfig
	began := time.Now().Truncate(time.Second) // startedAt has seconds only
	res, err := playbooks.CertsRenew(ctx, applySession(t, &out), playbooks.CertsRenewOptions{Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatalf("certs renew: %v\n%s", err, out.buf.String())
	}
	// One master at a time: each starts after the one before succeeded.
	var order []string
	var lastDone time.Time
	for _, e := range res.Report.Events {
		if e.Step != "certs-renew" {
			continue
		}
		switch e.Kind {
		case steps.Started:
			if e.Time.Before(lastDone) || (len(order) > 0 && lastDone.IsZero()) {
				t.Errorf("%s started at %s, before the master before it was done", e.Host, e.Time)
			}
			order = append(order, e.Host)
			lastDone = time.Time{}
		case steps.Succeeded:
			lastDone = e.Time
		}
	}
	if strings.Join(order, ",") != "master0,master1,master2" {
		t.Errorf("renewed on %v, want master0,master1,master2 in turn", order)
	}

	now := time.Now()
	after, err := playbooks.CertsCheck(ctx, applySession(t, &out))
	if err != nil {
		t.Fatal(err)
	}
	if under := playbooks.CertsUnder(after, now, 300); len(under) != 0 {
		t.Errorf("certificates under 300 days after the renewal: %+v", under)
	}
	for _, cert := range after {
		if cert.Host == "master1" && cert.Name == "apiserver" && cert.DaysLeft(now) < 360 {
			t.Errorf("master1's apiserver certificate: %d days left", cert.DaysLeft(now))
		}
	}
	// The restarted API server serves the renewed certificate.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", c.Host("master1").Address+":6443",
		&tls.Config{InsecureSkipVerify: true}) // only its dates are read
	if err != nil {
		t.Fatal(err)
	}
	served := conn.ConnectionState().PeerCertificates[0].NotAfter
	conn.Close()
	if days := served.Sub(now).Hours() / 24; days < 360 {
		t.Errorf("master1's API server still serves a certificate with %.0f days left", days)
	}
	if st, err := os.Stat(kubeconfig); err != nil || st.Mode().Perm() != 0o600 || res.Kubeconfig == nil {
		t.Fatalf("admin kubeconfig: %v %v", st, err)
	}
	// Every control-plane pod of every master was restarted (its
	// container started after the renewal began), as its kubelet reports.
	// The kubelet posts pod status on its own schedule, so the last pod
	// restarted may take a sync or two to show it.
	client := clientFor(t, kubeconfig)
	var stale []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		stale = stale[:0]
		for _, m := range []string{"master0", "master1", "master2"} {
			for _, component := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
				pod, err := client.CoreV1().Pods("kube-system").Get(ctx, component+"-"+m, metav1.GetOptions{})
				if err != nil {
					stale = append(stale, fmt.Sprintf("%s on %s: %v", component, m, err))
					continue
				}
				var started time.Time
				for _, cs := range pod.Status.ContainerStatuses {
					if cs.State.Running != nil {
						started = cs.State.Running.StartedAt.Time
					}
				}
				if started.Before(began) {
					stale = append(stale, fmt.Sprintf("%s on %s: running since %s, before the renewal began (%s)", component, m, started, began))
				}
			}
		}
		if len(stale) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, s := range stale {
		t.Error(s)
	}
}
