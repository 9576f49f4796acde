package cli

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/sidecar/notification"
)

func tokenCommand(io ioPair) *ffcli.Command {
	fs := flag.NewFlagSet("herald token", flag.ContinueOnError)
	user := fs.String("user", "", "user id the token is for (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid, at most "+auth.MaxTokenTTL.String())
	dataDir := fs.String("data-dir", config.Default().DataDir, "data directory whose generated secret signs the token")
	secretFile := fs.String("jwt-secret-file", "", "file with the HS256 secret (instead of --data-dir)")
	return &ffcli.Command{
		Name:       "token",
		ShortUsage: "herald token --user ID [--ttl 1h] [--data-dir DIR | --jwt-secret-file FILE]",
		ShortHelp:  "print an HS256 connect token for a user (for development and scripts)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if *user == "" {
				return usagef("--user is required")
			}
			if err := notification.ValidateUserID(*user); err != nil {
				return usagef("--user: %v", problemOf(err))
			}
			if *ttl <= 0 || *ttl > auth.MaxTokenTTL {
				return usagef("--ttl must be between 1s and %s, got %s", auth.MaxTokenTTL, *ttl)
			}
			if *secretFile != "" && *dataDir != config.Default().DataDir {
				return usagef("give --data-dir or --jwt-secret-file, not both")
			}
			secret, err := readSecret(*dataDir, *secretFile)
			if err != nil {
				return err
			}
			token, _, err := auth.NewHS256Issuer(secret).Issue(*user, *ttl)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(io.out, token)
			return err
		},
	}
}

// readSecret reads the HS256 secret from the secret file, or from the one
// `herald serve` generated in the data directory; it never creates one.
func readSecret(dataDir, secretFile string) ([]byte, error) {
	if secretFile != "" {
		return auth.LoadSecretFile(secretFile)
	}
	secret, err := auth.LoadSecretFile(filepath.Join(dataDir, auth.SecretFileName))
	if err != nil {
		return nil, fmt.Errorf("%w (start `herald serve --data-dir %s` once to create it, or pass --jwt-secret-file)", err, dataDir)
	}
	return secret, nil
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	return nil
}

// problemOf returns a field error's problem alone ("must not be empty").
func problemOf(err error) string {
	if fe, ok := err.(*notification.FieldError); ok {
		return fe.Problem
	}
	return err.Error()
}
