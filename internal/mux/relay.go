package mux

import (
	"errors"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// relay opens each channel a run asks for on the host's connection and
// joins the two: data both ways (stderr too), requests both ways (exec,
// subsystem, signals one way; exit-status the other), the ends passed on.
func relay(chans <-chan ssh.NewChannel, host *ssh.Client) {
	for nc := range chans {
		up, upReqs, err := host.OpenChannel(nc.ChannelType(), nc.ExtraData())
		if err != nil {
			var refused *ssh.OpenChannelError
			if errors.As(err, &refused) {
				nc.Reject(refused.Reason, refused.Message)
			} else {
				nc.Reject(ssh.ConnectionFailed, err.Error())
			}
			continue
		}
		down, downReqs, err := nc.Accept()
		if err != nil {
			up.Close()
			continue
		}
		go join(down, downReqs, up, upReqs)
	}
}

// join relays one channel until the host's side closes it (or the run's).
func join(down ssh.Channel, downReqs <-chan *ssh.Request, up ssh.Channel, upReqs <-chan *ssh.Request) {
	var output sync.WaitGroup // the host's stdout and stderr, to their ends
	output.Add(2)
	go func() {
		defer output.Done()
		io.Copy(down, up)
	}()
	go func() {
		defer output.Done()
		io.Copy(down.Stderr(), up.Stderr())
	}()
	var eof sync.Once
	outputDone := func() {
		output.Wait()
		eof.Do(func() { down.CloseWrite() })
	}
	go func() { // stdin, then EOF
		io.Copy(up, down)
		up.CloseWrite()
	}()
	// The run's requests are answered as the host answers them; the host
	// may run the command and close before that answer is relayed, so the
	// run's side closes only once every answer is out.
	var mu sync.Mutex
	pending := 0 // run's requests not answered yet
	answered := sync.NewCond(&mu)
	go func() {
		for r := range downReqs {
			mu.Lock()
			pending++
			mu.Unlock()
			forward(r, up)
			mu.Lock()
			pending--
			answered.Broadcast()
			mu.Unlock()
		}
		up.Close() // the run closed its side
	}()
	for r := range upReqs { // ends when the host closes the channel
		if r.Type == "exit-status" || r.Type == "exit-signal" {
			outputDone() // the output before the status, as the host sent it
		}
		forward(r, down)
	}
	outputDone()
	mu.Lock()
	for pending > 0 {
		answered.Wait()
	}
	mu.Unlock()
	down.Close()
}

func forward(r *ssh.Request, to ssh.Channel) {
	ok, err := to.SendRequest(r.Type, r.WantReply, r.Payload)
	if r.WantReply {
		r.Reply(ok && err == nil, nil)
	}
}
