// Command cofferd is the Coffer server. Until the cluster issue lands it has
// one mode, `cofferd dev`: a local three-replica metadata group and three
// block nodes in one process, with a short demo of an upload (block, then
// commit), history and the change journal.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "dev" {
		fmt.Fprintln(os.Stderr, "usage: cofferd dev [--dir DIR] [--admin-password PASSWORD] [--exit]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("cofferd dev", flag.ContinueOnError)
	dir := fs.String("dir", "./coffer-data", "data directory (reused on restart)")
	adminPassword := fs.String("admin-password", os.Getenv("COFFER_ADMIN_PASSWORD"), "password of the first admin user (default: generated and printed)")
	exit := fs.Bool("exit", false, "run the demo and exit instead of serving until interrupted")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *adminPassword == "" {
		b := make([]byte, 12)
		rand.Read(b)
		*adminPassword = hex.EncodeToString(b)
	}
	if err := runDev(ctx, devConfig{Dir: *dir, AdminPassword: *adminPassword, Exit: *exit, Log: log}); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "cofferd:", err)
		os.Exit(1)
	}
}
