package bundle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// readZip reads an archive held in memory. Nothing is extracted to disk; still, paths that
// would escape a directory are refused, because such an archive is hostile or broken. Sizes
// in headers are checked up front but not trusted: every entry is read through a counter.
func readZip(origin string, data []byte, mod time.Time, lim Limits) (map[string]entry, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: not a readable zip archive: %w", origin, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, fmt.Errorf("bundle %s: %d entries, limit %d: %w", origin, len(zr.File), lim.MaxEntries, ErrTooManyEntries)
	}
	var declared uint64
	for _, f := range zr.File {
		if err := checkEntryName(f.Name); err != nil {
			return nil, fmt.Errorf("bundle %s: entry %q: %w", origin, f.Name, err)
		}
		if f.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("bundle %s: entry %q is a symlink: %w", origin, f.Name, ErrUnsafePath)
		}
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxTotalBytes) {
			return nil, fmt.Errorf("bundle %s: entries declare more than %d bytes uncompressed: %w", origin, lim.MaxTotalBytes, ErrBomb)
		}
	}
	files := map[string]entry{}
	var total int64
	for _, f := range zr.File {
		name := strings.TrimSuffix(f.Name, "/")
		if strings.HasSuffix(f.Name, "/") || f.Mode().IsDir() {
			continue
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("bundle %s: entry %q appears twice: %w", origin, name, ErrInvalid)
		}
		if hidden(name) {
			continue
		}
		if !wanted(name) {
			if isPython(name) {
				files[name] = entry{mod: f.Modified}
			}
			continue
		}
		if f.UncompressedSize64 > uint64(lim.MaxFileBytes) {
			if f.CompressedSize64 > 0 && f.UncompressedSize64/f.CompressedSize64 > uint64(lim.MaxRatio) {
				return nil, fmt.Errorf("bundle %s: entry %q declares %d bytes from %d compressed: %w", origin, name, f.UncompressedSize64, f.CompressedSize64, ErrBomb)
			}
			return nil, fmt.Errorf("bundle %s: entry %q declares %d bytes, limit %d: %w", origin, name, f.UncompressedSize64, lim.MaxFileBytes, ErrTooLarge)
		}
		b, err := readEntry(f, int64(len(data)), lim, lim.MaxTotalBytes-total)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: entry %q: %w", origin, name, err)
		}
		total += int64(len(b))
		m := f.Modified
		if m.IsZero() {
			m = mod
		}
		files[name] = entry{data: b, mod: m}
	}
	return files, nil
}

// checkEntryName refuses absolute paths, ".." elements, backslashes and drive letters.
func checkEntryName(name string) error {
	n := strings.TrimSuffix(name, "/")
	if n == "" || strings.ContainsAny(n, "\\\x00") || strings.HasPrefix(n, "/") ||
		(len(n) >= 2 && n[1] == ':') {
		return ErrUnsafePath
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return ErrUnsafePath
		}
	}
	return nil
}

// readEntry decompresses one entry, stopping as soon as it produces more than the file
// limit, the remaining total budget, or its ratio allowance.
func readEntry(f *zip.File, archive int64, lim Limits, budget int64) ([]byte, error) {
	// The compressed size is a header value too; it cannot exceed the archive.
	compressed := archive
	if f.CompressedSize64 < uint64(archive) {
		compressed = int64(f.CompressedSize64)
	}
	ratioCap := max(compressed*lim.MaxRatio, ratioFloor)
	limit := min(lim.MaxFileBytes, budget, ratioCap)
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	n := int64(len(data))
	switch {
	case n > limit && n > ratioCap:
		return nil, fmt.Errorf("expands more than %d times its compressed size: %w", lim.MaxRatio, ErrBomb)
	case n > limit && n > budget:
		return nil, fmt.Errorf("expands past the %d-byte total limit: %w", lim.MaxTotalBytes, ErrBomb)
	case n > limit:
		return nil, fmt.Errorf("more than %d bytes: %w", lim.MaxFileBytes, ErrTooLarge)
	case err != nil && errors.Is(err, zip.ErrFormat):
		// archive/zip refuses to read past the declared size: a header that lies low.
		return nil, fmt.Errorf("expands beyond the %d bytes its header declares: %w", f.UncompressedSize64, ErrBomb)
	case err != nil:
		return nil, err
	}
	return data, nil
}
