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

func TestFindMember(t *testing.T) {
	members := []Member{
		{ID: 1, Name: "master0", PeerURLs: []string{"https://10.0.0.10:2380"}},
		{ID: 2, Name: "", PeerURLs: []string{"https://10.0.0.11:2380"}, IsLearner: true}, // added, never started
		{ID: 3, Name: "master2", PeerURLs: []string{"https://[fd00::12]:2380"}},
	}
	for _, tc := range []struct {
		name, address string
		wantID        uint64
		found         bool
	}{
		{"master0", "10.0.0.10", 1, true},
		{"master1", "10.0.0.11", 2, true}, // only the peer URL says whose it is
		{"master2", "fd00::12", 3, true},  // IPv6 peer URLs are bracketed
		{"master3", "10.0.0.13", 0, false},
		{"master1", "10.0.0.1", 0, false}, // a prefix of another's address is not a match
	} {
		m, ok := FindMember(members, tc.name, PeerURL(tc.address))
		if ok != tc.found || m.ID != tc.wantID {
			t.Errorf("FindMember(%s, %s) = %d, %v; want %d, %v", tc.name, tc.address, m.ID, ok, tc.wantID, tc.found)
		}
	}
}
