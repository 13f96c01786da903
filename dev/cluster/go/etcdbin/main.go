// Command etcd is etcd's own server/main.go, built from the Go module proxy.
// etcd's go.mods use local replaces, so `go install go.etcd.io/etcd/...@v3.6.x`
// does not work; this wrapper module requires go.etcd.io/etcd/server/v3 instead.
// Built by dev/cluster/build-binaries.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
