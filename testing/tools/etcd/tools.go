//go:build tools

// Package tools pins etcd: kubeadm 1.34 writes etcd 3.6 flags.
package tools

import _ "go.etcd.io/etcd/server/v3"
