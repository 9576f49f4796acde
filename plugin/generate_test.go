package plugin_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/testing/testenv"
)

// TestGeneratedCodeIsCurrent regenerates the gRPC code the way `task
// generate` does, into a scratch directory, and compares it byte for byte
// with the committed files: a .proto edited without regenerating fails here.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		testenv.Missing(t, "skipping: protoc not found (install Debian's protobuf-compiler)")
	}
	// Build the pinned tools of go.mod's tool directives.
	scratch := t.TempDir()
	plugins := map[string]string{}
	for name, pkg := range toolPackage {
		plugins[name] = filepath.Join(scratch, "bin", name)
		if out, err := exec.Command("go", "build", "-o", plugins[name], pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	const module = "github.com/heraldhq/herald"
	cmd := exec.Command(protoc, "-I", "proto",
		"--plugin=protoc-gen-go="+plugins["protoc-gen-go"],
		"--plugin=protoc-gen-go-grpc="+plugins["protoc-gen-go-grpc"],
		"--go_out="+scratch, "--go_opt=module="+module+"/plugin",
		"--go-grpc_out="+scratch, "--go-grpc_opt=module="+module+"/plugin",
		"herald/v1/herald.proto")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	for _, file := range []string{"herald.pb.go", "herald_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join("heraldv1", file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(scratch, "heraldv1", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("plugin/heraldv1/%s is not what `task generate` produces from the .proto; run it", file)
		}
	}
}

var toolPackage = map[string]string{
	"protoc-gen-go":      "google.golang.org/protobuf/cmd/protoc-gen-go",
	"protoc-gen-go-grpc": "google.golang.org/grpc/cmd/protoc-gen-go-grpc",
}
