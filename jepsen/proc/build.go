//go:build unix

package proc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles cofferd (CGO_ENABLED=0 go build ./cmd/cofferd) into
// outDir/cofferd and returns that path. It finds the module from the
// working directory (go env GOMOD), so it works from anywhere inside the
// Coffer module; elsewhere pass an existing binary to Config.Binary
// instead. Errors wrap ErrBuild and carry the compiler's output.
func Build(ctx context.Context, outDir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	out, err := filepath.Abs(filepath.Join(outDir, "cofferd"))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/cofferd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: go build: %v\n%s", ErrBuild, err, b)
	}
	return out, nil
}

// moduleRoot is the directory of the go.mod that holds cmd/cofferd.
func moduleRoot(ctx context.Context) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: go env GOMOD: %v %s", ErrBuild, err, stderr.Bytes())
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("%w: the working directory is not inside a Go module: pass a cofferd binary instead", ErrBuild)
	}
	root := filepath.Dir(gomod)
	if fi, err := os.Stat(filepath.Join(root, "cmd", "cofferd")); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%w: module %s has no cmd/cofferd: pass a cofferd binary instead", ErrBuild, root)
	}
	return root, nil
}
