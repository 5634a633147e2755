module github.com/fleetops/fleet

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/hashicorp/go-multierror v1.1.1
	github.com/pkg/sftp v1.13.12
	golang.org/x/crypto v0.59.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/kr/fs v0.1.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
