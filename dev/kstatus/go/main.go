// kstatus: what sigs.k8s.io/cli-utils' kstatus (status.Compute, the library Flux's
// kustomize-controller, kpt and cli-utils' appliers judge resources with) says of Kubernetes
// objects. Reads one JSON object per line on stdin; writes one JSON line per object on stdout:
// {"status": "Current"|"InProgress"|"Failed"|..., "message": "..."}. An object kstatus cannot
// judge gets {"error": "..."} and the exit code is 1 at the end.
//
// Used by operator/tests/argocd_health.rs (the kstatus tier) over every Predictor state the
// operator computes. Built by dev/kstatus/build.sh; `kstatus --version` prints the cli-utils
// version it was built with.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

const library = "sigs.k8s.io/cli-utils"

type verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func version() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == library {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func judge(line []byte) verdict {
	// As a client reads it from the apiserver: whole numbers as int64, which kstatus requires.
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(line); err != nil {
		return verdict{Error: fmt.Sprintf("not a Kubernetes object: %v", err)}
	}
	result, err := status.Compute(object)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	return verdict{Status: result.Status.String(), Message: result.Message}
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Printf("kstatus (%s %s)\n", library, version())
		return
	}
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < objects.jsonl   (one JSON object per line)")
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	failed := false
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		v := judge(in.Bytes())
		failed = failed || v.Error != ""
		if err := out.Encode(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}
