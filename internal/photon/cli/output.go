package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/pflag"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// printer writes command results as a table for people or as protojson
// (the same JSON the HTTP API speaks) for scripts.
type printer struct {
	w    io.Writer
	json bool
}

func newPrinter(w io.Writer, format string) (*printer, error) {
	switch format {
	case formatTable, "":
		return &printer{w: w}, nil
	case formatJSON:
		return &printer{w: w, json: true}, nil
	}
	return nil, fmt.Errorf("-o %q: want %s or %s", format, formatTable, formatJSON)
}

func addOutputFlag(fs *pflag.FlagSet, format *string) {
	fs.StringVarP(format, "output", "o", formatTable, "output format: table or json (protojson, for scripts)")
}

// column is one field of a resource in table output.
type column[T any] struct {
	header string
	value  func(T) string
}

// showList prints items as a table with a header row, or as a JSON array.
func showList[T proto.Message](p *printer, items []T, cols []column[T]) error {
	if p.json {
		return writeJSONList(p.w, items)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, it := range items {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cell(c.value(it))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// showOne prints one resource as "FIELD  value" lines, or as JSON.
func showOne[T proto.Message](p *printer, item T, cols []column[T]) error {
	if p.json {
		return writeJSON(p.w, item)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t%s\n", c.header, cell(c.value(item)))
	}
	return tw.Flush()
}

// cell makes a value safe for one table cell: "-" for empty, and control
// characters (tabs and newlines that would break the columns, escape
// sequences a hostile display name could use to rewrite the terminal)
// replaced.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// canonicalJSON marshals m with protojson and re-formats it: protojson
// deliberately varies its whitespace between builds, and scripts and tests
// deserve stable output.
func canonicalJSON(m proto.Message) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return buf.Bytes(), nil
}

func writeJSON(w io.Writer, m proto.Message) error {
	b, err := canonicalJSON(m)
	if err != nil {
		return err
	}
	return writeIndented(w, b)
}

// writeJSONList writes the items of all pages as one JSON array.
func writeJSONList[T proto.Message](w io.Writer, items []T) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := canonicalJSON(it)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return writeIndented(w, buf.Bytes())
}

func writeIndented(w io.Writer, compact []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// Value formatters for table cells.

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func fmtLabels(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// fmtEnum shortens an enum value name for a table: STATE_ACTIVE with
// prefix "STATE_" is "active".
func fmtEnum(name, prefix string) string {
	if strings.HasSuffix(name, "_UNSPECIFIED") {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

func fmtBool(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
