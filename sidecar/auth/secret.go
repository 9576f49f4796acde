package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MinSecretLen is the shortest HS256 secret accepted from a file, in bytes
// (RFC 7518 section 3.2: at least the size of the hash output).
const MinSecretLen = 32

// SecretFileName is the name of the generated secret in the data directory.
const SecretFileName = "secret"

// LoadSecretFile reads an HS256 secret: the file's content with surrounding
// white space trimmed. It fails when the result is shorter than MinSecretLen.
func LoadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read secret file: %w", err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: secret file %s holds %d bytes after trimming, at least %d required",
			path, len(secret), MinSecretLen)
	}
	return secret, nil
}

// LoadOrCreateSecret returns the secret kept in dataDir/secret, creating the
// directory (0700) and the file (0600, 32 random bytes hex-encoded) on first
// use. Two processes racing to create it end up with the same secret.
func LoadOrCreateSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, SecretFileName)
	secret, err := LoadSecretFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create data dir: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("auth: generate secret: %w", err)
	}
	if err := writeNew(path, []byte(hex.EncodeToString(raw[:])+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return LoadSecretFile(path)
		}
		return nil, err
	}
	return LoadSecretFile(path)
}

// writeNew creates path with content b and mode 0600, failing with an error
// wrapping fs.ErrExist when it exists. It writes a temporary file and links
// it into place, so no reader ever sees a partly written secret.
func writeNew(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return fmt.Errorf("auth: create secret file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("auth: write secret file: %w", err)
	}
	// CreateTemp already made the file 0600.
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("auth: create secret file: %w", err)
	}
	return nil
}
