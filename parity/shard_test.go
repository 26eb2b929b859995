package parity

import (
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
)

var flagShard = flag.String("parity.shard", "",
	"run shard I of N of TestParity's case matrix, as I/N with 0 <= I < N (one process per GPU or runner): "+
		"case k of the matrix goes to shard k mod N, so the N shards together run every case exactly once; "+
		"the split is made on the whole matrix before -run filters it, so a -run pattern selects in each shard "+
		"the same cases whatever the other flags of the split are")

// shardSpec is -parity.shard: shard i of n (the zero value means all).
type shardSpec struct{ i, n int }

func (s shardSpec) String() string { return fmt.Sprintf("%d/%d", s.i, s.n) }

// parseShard parses I/N; "" is the whole matrix (0/1).
func parseShard(v string) (shardSpec, error) {
	if v == "" {
		return shardSpec{0, 1}, nil
	}
	a, b, ok := strings.Cut(v, "/")
	i, erri := strconv.Atoi(strings.TrimSpace(a))
	n, errn := strconv.Atoi(strings.TrimSpace(b))
	if !ok || erri != nil || errn != nil || n < 1 || i < 0 || i >= n {
		return shardSpec{}, fmt.Errorf("-parity.shard=%q: want I/N with N >= 1 and 0 <= I < N (for example 0/2 and 1/2 for two GPUs)", v)
	}
	return shardSpec{i, n}, nil
}

// shardOf returns the elements of xs that belong to shard s: element k
// when k mod n = i. Round-robin keeps the shards balanced, since
// neighbouring cases of the matrix (same model and dtype, similar S) cost
// about the same; the shards of one n partition xs.
func shardOf[T any](xs []T, s shardSpec) []T {
	if s.n <= 1 {
		return xs
	}
	out := make([]T, 0, len(xs)/s.n+1)
	for k := s.i; k < len(xs); k += s.n {
		out = append(out, xs[k])
	}
	return out
}

// debugShape reports whether a model is one of the small debug shapes
// (tiny-k90, tiny-qwen, tiny-gqa3, long-ctx): harness.Matrix's "small", the
// shapes whose float64 references cost next to nothing.
func debugShape(m model.Shape) bool { return m.Hidden*m.QDim() <= 1<<16 }

// pickCases is TestParity's selection: -short keeps the debug shapes only
// (a quick run), then -parity.shard keeps one shard of what is left.
func pickCases(cases []namedCase, short bool, s shardSpec) []namedCase {
	if short {
		var keep []namedCase
		for _, c := range cases {
			if debugShape(c.c.Model) {
				keep = append(keep, c)
			}
		}
		cases = keep
	}
	return shardOf(cases, s)
}

// selectCases applies -short and -parity.shard to TestParity's named cases.
func selectCases(t *testing.T, cases []namedCase) []namedCase {
	t.Helper()
	s, err := parseShard(*flagShard)
	if err != nil {
		t.Fatal(err)
	}
	out := pickCases(cases, testing.Short(), s)
	if testing.Short() || s.n > 1 {
		t.Logf("-short=%v -parity.shard=%v: %d of the matrix's %d cases", testing.Short(), s, len(out), len(cases))
	}
	if len(out) == 0 {
		t.Skipf("-parity.shard=%v: no case in this shard (%d cases in all)", s, len(cases))
	}
	return out
}

func TestParseShard(t *testing.T) {
	for v, want := range map[string]shardSpec{"": {0, 1}, "0/1": {0, 1}, "1/2": {1, 2}, " 3 / 5 ": {3, 5}} {
		got, err := parseShard(v)
		require.NoError(t, err, "-parity.shard=%q", v)
		require.Equal(t, want, got, "-parity.shard=%q", v)
	}
	for _, v := range []string{"1", "2/2", "-1/2", "0/0", "a/b", "1/2/3", "0/-1"} {
		_, err := parseShard(v)
		require.ErrorContains(t, err, "want I/N", "-parity.shard=%q", v)
	}
}

// TestShardUnion: for n = 1..5, the n shards of TestParity's matrix (the
// CPU default and the full GPU matrix, with and without -short) together
// hold every case exactly once, and no shard is more than one case larger
// than another.
func TestShardUnion(t *testing.T) {
	models := shardFixtures(t)
	for _, full := range []bool{false, true} {
		named := namedMatrix(harness.Matrix(models, full, 1))
		for _, short := range []bool{false, true} {
			all := names(pickCases(named, short, shardSpec{0, 1}))
			require.NotEmpty(t, all)
			require.Len(t, uniq(all), len(all), "full=%v short=%v: the matrix names a case twice", full, short)
			for n := 1; n <= 5; n++ {
				var union []string
				sizes := make([]int, n)
				for i := 0; i < n; i++ {
					shard := names(pickCases(named, short, shardSpec{i, n}))
					sizes[i] = len(shard)
					union = append(union, shard...)
				}
				// Sorted, a case missing or run twice is one line of the diff.
				require.Empty(t, cmp.Diff(sorted(all), sorted(union)),
					"full=%v short=%v n=%d: the union of the shards is not the matrix (-matrix +shards)", full, short, n)
				require.LessOrEqual(t, slices.Max(sizes)-slices.Min(sizes), 1,
					"full=%v short=%v n=%d: unbalanced shards %v", full, short, n, sizes)
			}
		}
	}
}

// TestShortIsDebugShapes: -short keeps every debug-shape case and no
// other, so a quick run still covers every tier on the small shapes.
func TestShortIsDebugShapes(t *testing.T) {
	named := namedMatrix(harness.Matrix(shardFixtures(t), false, 1))
	var want []string
	for _, c := range named {
		if c.c.Model.Name == "tiny-k90" || c.c.Model.Name == "tiny-qwen" || c.c.Model.Name == "tiny-gqa3" || c.c.Model.Name == "long-ctx" {
			want = append(want, c.c.Name())
		}
	}
	got := names(pickCases(named, true, shardSpec{0, 1}))
	require.NotEmpty(t, want)
	require.Empty(t, cmp.Diff(want, got), "-short cases (-want +got)")
	require.Less(t, len(got), len(named), "-short runs the whole matrix")
}

// shardFixtures is every fixture, whatever -parity.models says (test-go-asan
// runs the package with the debug shapes only).
func shardFixtures(t *testing.T) []model.Shape {
	t.Helper()
	all, err := model.LoadDir(filepath.Join(moduleRoot(), "fixtures", "models"))
	require.NoError(t, err)
	return all
}

// namedMatrix wraps cases as TestParity's selection sees them; the tests
// here know a case by its harness name (Case.Name), unique in the matrix.
func namedMatrix(cases []harness.Case) []namedCase {
	out := make([]namedCase, len(cases))
	for i, c := range cases {
		out[i] = namedCase{c: c}
	}
	return out
}

func sorted(xs []string) []string { return slices.Sorted(slices.Values(xs)) }

func uniq(xs []string) []string { return slices.Compact(sorted(xs)) }

func names(cs []namedCase) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.c.Name()
	}
	return out
}
