package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// decodeStrict decodes one fleet/v1 document into doc, refusing unknown
// fields and trailing data, and checks its kind.
func decodeStrict[T any](t *testing.T, data, kind string, doc *T) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(doc); err != nil {
		t.Fatalf("%s document: %v\n%s", kind, err, data)
	}
	if dec.More() {
		t.Fatalf("%s document: data after it:\n%s", kind, data)
	}
	var h Header
	json.Unmarshal([]byte(data), &h)
	if h.APIVersion != "fleet/v1" || h.Kind != kind {
		t.Errorf("header %+v, want fleet/v1 %s", h, kind)
	}
}

// testJSONDocuments runs every command that has -o json on the built
// cluster and decodes what it prints into the documents' Go types, which
// are the schema. What each says must agree with the cluster.
func testJSONDocuments(t *testing.T, all *bytes.Buffer, kubeconfig string) {
	t.Helper()
	run := func(args ...string) string {
		t.Helper()
		code, out, errs := fleet(args...)
		all.WriteString(out + errs)
		if code != 0 {
			t.Fatalf("fleet %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	var v VersionDoc
	decodeStrict(t, run("version", "-o", "json"), "Version", &v)
	if v.Version == "" {
		t.Error("version document without a version")
	}

	var check CheckDoc
	decodeStrict(t, run("check", "-i", cluster.Inventory, "-o", "json"), "Check", &check)
	if check.Total != 6 || check.Reachable != 6 || len(check.Hosts) != 6 || !check.Hosts[1].Tools["kubeadm"] || check.Hosts[1].Name != "master0" {
		t.Errorf("check document: %+v", check)
	}

	var status StatusDoc
	decodeStrict(t, run("status", "-i", cluster.Inventory, "-o", "json"), "Status", &status)
	joined := 0
	for _, n := range status.Nodes {
		if n.Joined == "yes" && n.Ready == "yes" {
			joined++
		}
		if n.Role == "worker" && (n.EtcdMember != "-" || n.InUpstream != "-") {
			t.Errorf("worker %s has etcd/upstream answers: %+v", n.Name, n)
		}
	}
	if len(status.Nodes) != 5 || joined != 5 {
		t.Errorf("status document: %d nodes, %d joined and Ready: %+v", len(status.Nodes), joined, status.Nodes)
	}

	var plan PlanDoc
	decodeStrict(t, run("plan", "-i", cluster.Inventory, "--kubeconfig", kubeconfig, "-o", "json"), "Plan", &plan)
	if plan.Changes != 0 || plan.Cluster == "" || len(plan.Steps) < 10 {
		t.Errorf("plan document of a built cluster: %d changes, %d tasks", plan.Changes, len(plan.Steps))
	}

	var tokens TokensDoc
	decodeStrict(t, run("rotate-tokens", "-i", cluster.Inventory, "--ttl", "5m", "-o", "json"), "TokenRotation", &tokens)
	made := 0
	for _, tok := range tokens.Tokens {
		if tok.Action == "created" && tok.Expires != nil && len(tok.ID) == 6 {
			made++
		}
	}
	if made != 1 {
		t.Errorf("rotate-tokens document: %d tokens created with an expiry, want 1: %+v", made, tokens.Tokens)
	}

	var certs CertsDoc
	decodeStrict(t, run("certs", "check", "-i", cluster.Inventory, "-o", "json"), "Certificates", &certs)
	if len(certs.Certificates) < 10 {
		t.Errorf("certs document: %d certificates", len(certs.Certificates))
	}

	// YAML: the same fields.
	var statusYAML StatusDoc
	if err := yaml.UnmarshalStrict([]byte(run("status", "-i", cluster.Inventory, "-o", "yaml")), &statusYAML); err != nil || len(statusYAML.Nodes) != 5 {
		t.Errorf("status -o yaml: %v, %d nodes", err, len(statusYAML.Nodes))
	}

	// apply -o json: event lines, then the result.
	out := run("apply", "-i", cluster.Inventory, "--kubeconfig", kubeconfig, "-o", "json")
	sc := bufio.NewScanner(strings.NewReader(out))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 10 {
		t.Fatalf("apply -o json printed %d lines:\n%s", len(lines), out)
	}
	for _, l := range lines[:len(lines)-1] {
		var e loggedEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Kind == "" || e.Step == "" {
			t.Errorf("apply -o json event line %q: %v", l, err)
		}
	}
	var result ApplyResult
	decodeStrict(t, lines[len(lines)-1], "ApplyResult", &result)
	if result.Changed || result.AlreadyDone == 0 || result.Error != "" {
		t.Errorf("the result of a no-change apply: %+v", result)
	}
}
