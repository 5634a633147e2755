package exec

import (
	"strings"
	"sync"
	"testing"
)

// A command killed at its timeout may still be writing when run reads what
// it printed: the buffer must allow that (go test -race finds it if not).
func TestCappedBufferReadWhileWritten(t *testing.T) {
	b := &cappedBuffer{max: 1 << 10}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			b.Write([]byte("0123456789"))
		}
	}()
	for range 200 {
		_ = b.String()
		_ = b.wasCut()
	}
	wg.Wait()
	if got := b.String(); len(got) != 1<<10 || !b.wasCut() || strings.Trim(got, "0123456789") != "" {
		t.Errorf("kept %d bytes (cut %v), want the first %d", len(got), b.wasCut(), 1<<10)
	}
}
