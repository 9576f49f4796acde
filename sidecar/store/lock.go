package store

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockedError returns the error of an Open that timed out on the file lock,
// naming the file and, when /proc/locks tells, the PID holding the lock.
func lockedError(path string) error {
	if pid := lockHolder(path); pid > 0 {
		return fmt.Errorf("open store %q: %w (held by pid %d)", path, ErrLocked, pid)
	}
	return fmt.Errorf("open store %q: %w", path, ErrLocked)
}

// lockHolder returns the PID of the process holding a lock on path as
// /proc/locks shows it, or 0 when it cannot be told (no /proc, another PID
// namespace, the holder gone). It is best effort, for the error message only.
func lockHolder(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	return findLockHolder(bufio.NewScanner(f), uint64(st.Dev), st.Ino)
}

// findLockHolder scans lines of /proc/locks, such as
//
//	1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF
//
// for a granted lock on the inode ino of device dev, and returns its PID.
// Lines of waiting requests ("1: -> FLOCK ...") are skipped.
func findLockHolder(sc *bufio.Scanner, dev, ino uint64) int {
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			continue
		}
		if lockedFileMatches(fields[5], dev, ino) {
			return pid
		}
	}
	return 0
}

// lockedFileMatches reports whether a /proc/locks file field
// ("major:minor:inode", the device numbers in hex) names ino on dev.
func lockedFileMatches(field string, dev, ino uint64) bool {
	parts := strings.Split(field, ":")
	if len(parts) != 3 {
		return false
	}
	major, err1 := strconv.ParseUint(parts[0], 16, 32)
	minor, err2 := strconv.ParseUint(parts[1], 16, 32)
	inode, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	return inode == ino && major == devMajor(dev) && minor == devMinor(dev)
}

// devMajor and devMinor split a Linux dev_t the way glibc's gnu_dev_major
// and gnu_dev_minor do.
func devMajor(dev uint64) uint64 { return ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000) }
func devMinor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xffffff00) }
