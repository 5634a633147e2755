//go:build tools

// Package tools pins etcd: kubeadm 1.34 writes etcd 3.6 flags. etcdutl
// checks (and one day restores) the snapshots of fleet backup.
package tools

import (
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
