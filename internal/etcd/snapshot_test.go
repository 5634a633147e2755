package etcd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeDB is a database whose first page carries bbolt's magic.
func fakeDB(n int) []byte {
	db := bytes.Repeat([]byte("etcd"), n/4)
	binary.LittleEndian.PutUint32(db[16:20], boltMagic)
	return db
}

// streamOf is the gateway's stream of a snapshot: JSON messages of
// chunks, the hash appended to the data.
func streamOf(data []byte, chunk int) string {
	var b strings.Builder
	for len(data) > 0 {
		n := min(chunk, len(data))
		msg, _ := json.Marshal(map[string]any{"result": map[string]any{"remaining_bytes": "0", "blob": data[:n], "version": "3.6.5"}})
		b.Write(msg)
		b.WriteString("\n")
		data = data[n:]
	}
	return b.String()
}

func TestSnapshot(t *testing.T) {
	db := fakeDB(10_000)
	sum := sha256.Sum256(db)
	withHash := append(append([]byte{}, db...), sum[:]...)
	corrupt := append([]byte{}, withHash...)
	corrupt[5000] ^= 0xff
	notBolt := append([]byte{}, db...)
	notBolt[17] = 0
	notBoltSum := sha256.Sum256(notBolt)
	tests := []struct {
		name    string
		stream  string
		wantErr string
	}{
		{name: "whole, in chunks that split the hash", stream: streamOf(withHash, 999)},
		{name: "one byte changed", stream: streamOf(corrupt, 4096), wantErr: "cut or corrupted"},
		{name: "cut before the hash", stream: streamOf(db[:20], 4096), wantErr: "without etcd's hash"},
		{name: "cut in the middle", stream: streamOf(withHash[:6000], 4096), wantErr: "cut or corrupted"},
		{name: "an error from etcd", stream: streamOf(withHash[:4096], 4096) + `{"error":{"grpc_code":14,"message":"etcdserver: leader changed"}}` + "\n", wantErr: "leader changed"},
		{name: "not a bbolt file", stream: streamOf(append(notBolt, notBoltSum[:]...), 4096), wantErr: "not a bbolt database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v3/maintenance/snapshot" || r.Method != http.MethodPost {
					http.NotFound(w, r)
					return
				}
				w.Write([]byte(tt.stream))
			}))
			defer srv.Close()
			c := &Client{http: srv.Client(), endpoint: srv.URL}
			var out bytes.Buffer
			info, err := c.Snapshot(context.Background(), &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// As etcdctl snapshot save writes it: the database, then its hash.
			if !bytes.Equal(out.Bytes(), withHash) || info.Size != int64(len(withHash)) || info.SHA256 != sum || info.Version != "3.6.5" {
				t.Errorf("wrote %d bytes (want %d), info %+v", out.Len(), len(withHash), info)
			}
		})
	}
}
