package etcd

import (
	"encoding/json"
	"testing"
)

func TestQuorum(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{1, 1}, {2, 2}, {3, 2}, {4, 3}, {5, 3}} {
		if got := Quorum(tc.n); got != tc.want {
			t.Errorf("Quorum(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestFlexUintReadsStringsAndNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{`"17237436991929493444"`, 17237436991929493444, false}, // above 2^63: must not go through float64
		{`42`, 42, false},
		{`"x"`, 0, true},
		{`-1`, 0, true},
	} {
		var f flexUint
		err := json.Unmarshal([]byte(tc.in), &f)
		if (err != nil) != tc.bad || uint64(f) != tc.want {
			t.Errorf("%s: got %d, %v; want %d, error %v", tc.in, f, err, tc.want, tc.bad)
		}
	}
}
