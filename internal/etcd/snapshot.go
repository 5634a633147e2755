package etcd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
)

// Status is what one member says of itself and of the cluster.
type Status struct {
	MemberID uint64
	Leader   uint64
	Version  string
}

// Status asks the member behind the endpoint.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var resp struct {
		Header struct {
			MemberID flexUint `json:"member_id"`
		} `json:"header"`
		Leader  flexUint `json:"leader"`
		Version string   `json:"version"`
	}
	if err := c.call(ctx, "/v3/maintenance/status", struct{}{}, &resp); err != nil {
		return Status{}, fmt.Errorf("etcd status: %w", err)
	}
	return Status{MemberID: uint64(resp.Header.MemberID), Leader: uint64(resp.Leader), Version: resp.Version}, nil
}

// SnapshotInfo describes a snapshot written by Snapshot.
type SnapshotInfo struct {
	Size    int64    // bytes written: the database and etcd's hash of it
	SHA256  [32]byte // of the database, as etcd sent it and as checked
	Version string   // of the etcd that made it
}

// hashSize is the SHA-256 etcd appends to the database in a snapshot
// stream, so that a client can tell a whole snapshot from a cut one.
const hashSize = sha256.Size

// Snapshot streams the member's backend database to w through the
// gateway's server-streaming /v3/maintenance/snapshot, and writes it as
// `etcdctl snapshot save` does: the database followed by the SHA-256 etcd
// appends, which `etcdutl snapshot restore` checks. The hash is also
// compared here with the one of the database received; a cut or corrupted
// stream is an error. The database is a bbolt file: its first page must
// carry bbolt's magic number.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (SnapshotInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/v3/maintenance/snapshot", bytes.NewReader([]byte("{}")))
	if err != nil {
		return SnapshotInfo{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	streaming := *c.http
	streaming.Timeout = 0 // a large database takes as long as it takes; ctx bounds it
	resp, err := streaming.Do(req)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return SnapshotInfo{}, fmt.Errorf("etcd snapshot: %s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	tw := &trailerWriter{w: w, hash: sha256.New()}
	var info SnapshotInfo
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Result *struct {
				Blob    []byte `json:"blob"`
				Version string `json:"version"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return info, fmt.Errorf("etcd snapshot: reading the stream after %d bytes: %w", tw.written, err)
		}
		if msg.Error != nil {
			return info, fmt.Errorf("etcd snapshot: %s", msg.Error.Message)
		}
		if msg.Result == nil {
			continue
		}
		if msg.Result.Version != "" {
			info.Version = msg.Result.Version
		}
		if _, err := tw.Write(msg.Result.Blob); err != nil {
			return info, fmt.Errorf("etcd snapshot: writing: %w", err)
		}
	}
	if len(tw.tail) < hashSize {
		return info, fmt.Errorf("etcd snapshot: the stream ended after %d bytes, without etcd's hash", tw.written+int64(len(tw.tail)))
	}
	copy(info.SHA256[:], tw.hash.Sum(nil))
	if !bytes.Equal(info.SHA256[:], tw.tail) {
		return info, fmt.Errorf("etcd snapshot: the database's SHA-256 %x differs from the %x etcd sent: cut or corrupted", info.SHA256, tw.tail)
	}
	if _, err := w.Write(tw.tail); err != nil {
		return info, fmt.Errorf("etcd snapshot: writing: %w", err)
	}
	info.Size = tw.written + hashSize
	if err := checkBolt(tw.head); err != nil {
		return info, err
	}
	return info, nil
}

// trailerWriter writes all but the last hashSize bytes it is given to w
// (and to hash): the stream's trailer is kept in tail. head keeps the
// start of the database for checkBolt.
type trailerWriter struct {
	w       io.Writer
	hash    hash.Hash
	tail    []byte
	head    []byte
	written int64
}

func (t *trailerWriter) Write(p []byte) (int, error) {
	buf := append(t.tail, p...)
	cut := max(0, len(buf)-hashSize)
	out := buf[:cut]
	if len(t.head) < 64 {
		t.head = append(t.head, out[:min(len(out), 64-len(t.head))]...)
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	t.hash.Write(out)
	t.written += int64(len(out))
	t.tail = append([]byte(nil), buf[cut:]...)
	return len(p), nil
}

// boltMagic is bbolt's meta page magic, after the 16-byte page header.
const boltMagic = 0xED0CDAED

func checkBolt(head []byte) error {
	if len(head) < 20 || binary.LittleEndian.Uint32(head[16:20]) != boltMagic {
		return fmt.Errorf("etcd snapshot: not a bbolt database (no magic number in its first page)")
	}
	return nil
}
