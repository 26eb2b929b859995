package reference

import "math"

// The projections' float64 passes walk W one output row at a time, each
// output a single chain of adds in increasing k. One chain is bound by the
// add's latency (about four cycles a weight on the GPU hosts' Xeons), not
// by memory; four rows side by side share each x[k] load and run four
// independent chains, about 3x the weights per second on one core
// (BenchmarkLinearRowBlock), while each output still adds the same products
// in the same order: the values are bit-identical to the one-row loop.
// Every product is converted explicitly (float64(a*b)) so that no compiler
// fuses it with the add into an FMA (the Go spec allows fusion unless an
// explicit conversion rounds): the order written here is the order run,
// on every GOARCH and GOAMD64 level.

// dotRows sets y[j] = Σ_k x[k]·W[j,k] for j in [lo, hi), W [n, len(x)]
// row-major, each sum in increasing k.
func dotRows(x, w, y []float64, lo, hi int) {
	k := len(x)
	j := lo
	for ; j+4 <= hi; j += 4 {
		r0 := w[j*k : (j+1)*k]
		r1 := w[(j+1)*k : (j+2)*k][:len(r0)]
		r2 := w[(j+2)*k : (j+3)*k][:len(r0)]
		r3 := w[(j+3)*k : (j+4)*k][:len(r0)]
		var s0, s1, s2, s3 float64
		for i, xv := range x[:len(r0)] {
			s0 += float64(xv * r0[i])
			s1 += float64(xv * r1[i])
			s2 += float64(xv * r2[i])
			s3 += float64(xv * r3[i])
		}
		y[j], y[j+1], y[j+2], y[j+3] = s0, s1, s2, s3
	}
	for ; j < hi; j++ {
		row := w[j*k : (j+1)*k]
		var s float64
		for i, xv := range x[:len(row)] {
			s += float64(xv * row[i])
		}
		y[j] = s
	}
}

// dotAbsRows is dotRows that also sets a[j] = Σ_k |x[k]·W[j,k]| from the
// same products, in the same order.
func dotAbsRows(x, w, y, a []float64, lo, hi int) {
	k := len(x)
	j := lo
	for ; j+4 <= hi; j += 4 {
		r0 := w[j*k : (j+1)*k]
		r1 := w[(j+1)*k : (j+2)*k][:len(r0)]
		r2 := w[(j+2)*k : (j+3)*k][:len(r0)]
		r3 := w[(j+3)*k : (j+4)*k][:len(r0)]
		var s0, s1, s2, s3, m0, m1, m2, m3 float64
		for i, xv := range x[:len(r0)] {
			p0, p1, p2, p3 := float64(xv*r0[i]), float64(xv*r1[i]), float64(xv*r2[i]), float64(xv*r3[i])
			s0 += p0
			s1 += p1
			s2 += p2
			s3 += p3
			m0 += math.Abs(p0)
			m1 += math.Abs(p1)
			m2 += math.Abs(p2)
			m3 += math.Abs(p3)
		}
		y[j], y[j+1], y[j+2], y[j+3] = s0, s1, s2, s3
		a[j], a[j+1], a[j+2], a[j+3] = m0, m1, m2, m3
	}
	for ; j < hi; j++ {
		row := w[j*k : (j+1)*k]
		var s, m float64
		for i, xv := range x[:len(row)] {
			p := float64(xv * row[i])
			s += p
			m += math.Abs(p)
		}
		y[j], a[j] = s, m
	}
}

// AbsDotCols sets out[j] = Σ_{i in cols} |v[i]·W[j,i]| for j in [lo, hi),
// W [n, len(v)] row-major, over the listed columns in their order (the
// sparse pass of tolerance.LinearProp), four rows at a time as dotRows.
func AbsDotCols(v, w []float64, cols []int, out []float64, lo, hi int) {
	k := len(v)
	j := lo
	for ; j+4 <= hi; j += 4 {
		r0 := w[j*k : (j+1)*k]
		r1 := w[(j+1)*k : (j+2)*k][:len(r0)]
		r2 := w[(j+2)*k : (j+3)*k][:len(r0)]
		r3 := w[(j+3)*k : (j+4)*k][:len(r0)]
		var s0, s1, s2, s3 float64
		for _, i := range cols {
			vv := v[i]
			s0 += math.Abs(float64(vv * r0[i]))
			s1 += math.Abs(float64(vv * r1[i]))
			s2 += math.Abs(float64(vv * r2[i]))
			s3 += math.Abs(float64(vv * r3[i]))
		}
		out[j], out[j+1], out[j+2], out[j+3] = s0, s1, s2, s3
	}
	for ; j < hi; j++ {
		row := w[j*k : (j+1)*k]
		var s float64
		for _, i := range cols {
			s += math.Abs(float64(v[i] * row[i]))
		}
		out[j] = s
	}
}

// LinearAt returns output j of LinearAbs(x, w, bias, n): y_j and a_j, the
// same products added in the same order, for a spot check of one output
// computed elsewhere (the reference library on the GPU: internal/harness,
// refdev.go).
func LinearAt(x, w, bias []float64, j int) (y, a float64) {
	k := len(x)
	row := w[j*k : (j+1)*k]
	for i, xv := range x[:len(row)] {
		p := float64(xv * row[i])
		y += p
		a += math.Abs(p)
	}
	if bias != nil {
		y += bias[j]
		a += math.Abs(bias[j])
	}
	return y, a
}
