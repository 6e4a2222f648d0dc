// Command gomapbench runs workload W on Go's built-in map, the peer that
// gomap's figures are held against.  It mirrors ../harness.h exactly: the
// same keys (splitmix64 seeds 1 and 2, string keys as 16 hex digits sharing
// one backing string), the same phases, modes, checks, latency histogram and
// JSON line.  Built offline by run.sh: GOFLAGS=-mod=mod GOPROXY=off.
package main

import (
	"flag"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

var _ unsafe.Pointer // for go:linkname

// nanotime is the runtime's monotonic clock (clock_gettime(CLOCK_MONOTONIC)
// through the vDSO): the clock the C drivers read too.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

var sink uint64

func splitmix64(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func genKeys(n int, seed uint64) []uint64 {
	k := make([]uint64, n)
	s := seed
	for i := range k {
		k[i] = splitmix64(&s)
	}
	return k
}

func strKeys(k []uint64) []string {
	const hex = "0123456789abcdef"
	buf := make([]byte, len(k)*16)
	for i, v := range k {
		for d := 0; d < 16; d++ {
			buf[i*16+d] = hex[(v>>(60-4*uint(d)))&15]
		}
	}
	all := string(buf)
	out := make([]string, len(k))
	for i := range out {
		out[i] = all[i*16 : i*16+16]
	}
	return out
}

func fail(what string) {
	fmt.Fprintf(os.Stderr, "bench: go: WRONG RESULT: %s\n", what)
	os.Exit(1)
}

// ---- memory ----

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var pages, res int64
	fmt.Sscan(string(b), &pages, &res)
	return res * int64(os.Getpagesize())
}

func hwmBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			fmt.Sscan(strings.TrimSpace(line[6:]), &kb)
			return kb * 1024
		}
	}
	return 0
}

// heapBytes: live heap after a full collection (the allocator's count).
func heapBytes() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// ---- latency histogram (as in harness.h) ----

const (
	hExact = 4096
	hSub   = 2048
	hSize  = hExact + 52*hSub
)

type hist struct {
	count  []uint32
	n, max uint64
	maxAt  int // which insert of its map took the longest
}

func (h *hist) add(v uint64) {
	var idx uint64
	if v < hExact {
		idx = v
	} else {
		shift := uint64(63-bits.LeadingZeros64(v)) - 11
		idx = hExact + (shift-1)*hSub + (v >> shift) - hSub
	}
	h.count[idx]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func histValue(idx uint64) uint64 {
	if idx < hExact {
		return idx
	}
	j := idx - hExact
	shift := j/hSub + 1
	return (j%hSub + hSub) << shift
}

func (h *hist) quantile(q float64) uint64 {
	rank := uint64(q*float64(h.n) + 0.999999)
	if rank == 0 {
		rank = 1
	}
	var acc uint64
	for i := range h.count {
		acc += uint64(h.count[i])
		if acc >= rank {
			return histValue(uint64(i))
		}
	}
	return h.max
}

func clockOverhead() float64 {
	const r = 200000
	t0 := nanotime()
	for i := 0; i < r; i++ {
		sink += uint64(nanotime())
	}
	return float64(nanotime()-t0) / r
}

// ---- phases ----

var phaseNames = []string{"insert", "hit", "miss", "iter", "delete"}

func phasesU64(n, reps int, keys, miss []uint64) [5]float64 {
	var t [5]int64
	var want uint64
	for _, k := range keys {
		want += k * 3
	}
	for r := 0; r < reps; r++ {
		m := map[uint64]uint64{}
		t0 := nanotime()
		for _, k := range keys {
			m[k] = k * 3
		}
		t1 := nanotime()
		var s, bad uint64
		for _, k := range keys {
			if v, ok := m[k]; ok {
				s += v
				if v != k*3 {
					bad++
				}
			} else {
				bad++
			}
		}
		t2 := nanotime()
		found := 0
		for _, k := range miss {
			if _, ok := m[k]; ok {
				found++
			}
		}
		t3 := nanotime()
		var s2 uint64
		cnt := 0
		for _, v := range m {
			s2 += v
			cnt++
		}
		t4 := nanotime()
		for _, k := range keys {
			delete(m, k)
		}
		t5 := nanotime()
		if len(m) != 0 {
			fail("map not empty after delete")
		}
		if bad != 0 || s != want {
			fail("hit phase: missing key or wrong value")
		}
		if found != 0 {
			fail("miss phase found an absent key")
		}
		if s2 != want || cnt != n {
			fail("iteration sum/count")
		}
		t[0] += t1 - t0
		t[1] += t2 - t1
		t[2] += t3 - t2
		t[3] += t4 - t3
		t[4] += t5 - t4
		sink += s + s2
	}
	var ns [5]float64
	for p := range t {
		ns[p] = float64(t[p]) / (float64(n) * float64(reps))
	}
	return ns
}

func phasesStr(n, reps int, keys, miss []string, vals []uint64) [5]float64 {
	var t [5]int64
	var want uint64
	for _, v := range vals {
		want += v * 3
	}
	for r := 0; r < reps; r++ {
		m := map[string]uint64{}
		t0 := nanotime()
		for i, k := range keys {
			m[k] = vals[i] * 3
		}
		t1 := nanotime()
		var s, bad uint64
		for i, k := range keys {
			if v, ok := m[k]; ok {
				s += v
				if v != vals[i]*3 {
					bad++
				}
			} else {
				bad++
			}
		}
		t2 := nanotime()
		found := 0
		for _, k := range miss {
			if _, ok := m[k]; ok {
				found++
			}
		}
		t3 := nanotime()
		var s2 uint64
		cnt := 0
		for _, v := range m {
			s2 += v
			cnt++
		}
		t4 := nanotime()
		for _, k := range keys {
			delete(m, k)
		}
		t5 := nanotime()
		if len(m) != 0 {
			fail("map not empty after delete")
		}
		if bad != 0 || s != want {
			fail("hit phase: missing key or wrong value")
		}
		if found != 0 {
			fail("miss phase found an absent key")
		}
		if s2 != want || cnt != n {
			fail("iteration sum/count")
		}
		t[0] += t1 - t0
		t[1] += t2 - t1
		t[2] += t3 - t2
		t[3] += t4 - t3
		t[4] += t5 - t4
		sink += s + s2
	}
	var ns [5]float64
	for p := range t {
		ns[p] = float64(t[p]) / (float64(n) * float64(reps))
	}
	return ns
}

// latency: every insert timed alone; memory after the first map.
func latencyU64(n, reps int, keys []uint64, h *hist) (mem [3]float64) {
	for r := 0; r < reps; r++ {
		rss0, heap0 := rssBytes(), int64(0)
		if r == 0 {
			heap0 = heapBytes()
			rss0 = rssBytes()
		}
		m := map[uint64]uint64{}
		prev := nanotime()
		for i, k := range keys {
			m[k] = k * 3
			now := nanotime()
			if uint64(now-prev) > h.max {
				h.maxAt = i
			}
			h.add(uint64(now - prev))
			prev = now
		}
		if r == 0 {
			mem[0] = float64(rssBytes()-rss0) / float64(n)
			mem[1] = float64(hwmBytes()-rss0) / float64(n)
			mem[2] = float64(heapBytes()-heap0) / float64(n)
		}
		if len(m) != n {
			fail("latency: wrong length")
		}
		runtime.KeepAlive(m)
	}
	return
}

func latencyStr(n, reps int, keys []string, vals []uint64, h *hist) (mem [3]float64) {
	for r := 0; r < reps; r++ {
		rss0, heap0 := rssBytes(), int64(0)
		if r == 0 {
			heap0 = heapBytes()
			rss0 = rssBytes()
		}
		m := map[string]uint64{}
		prev := nanotime()
		for i, k := range keys {
			m[k] = vals[i] * 3
			now := nanotime()
			if uint64(now-prev) > h.max {
				h.maxAt = i
			}
			h.add(uint64(now - prev))
			prev = now
		}
		if r == 0 {
			mem[0] = float64(rssBytes()-rss0) / float64(n)
			mem[1] = float64(hwmBytes()-rss0) / float64(n)
			mem[2] = float64(heapBytes()-heap0) / float64(n)
		}
		if len(m) != n {
			fail("latency: wrong length")
		}
		runtime.KeepAlive(m)
	}
	return
}

// ---- Go's own benchmark shapes (runtime/map_test.go), on uint64 -> uint64 ----

func shapes(quick bool) {
	fmt.Printf(`{"impl":"go","mode":"shapes","results":{`)
	sep := ""
	for size := 1; size <= 100000; size *= 10 {
		iters := 4000000 / size
		if quick {
			iters = 1000000 / size
		}
		if iters < 5 {
			iters = 5
		}
		t0 := nanotime()
		for i := 0; i < iters; i++ {
			m := map[uint64]uint64{}
			for j := 0; j < size; j++ {
				m[uint64(j)] = uint64(j)
			}
			if len(m) != size {
				fail("populate")
			}
		}
		fmt.Printf(`%s"populate/%d":%.1f`, sep, size, float64(nanotime()-t0)/float64(iters))
		sep = ","
	}
	for size := 100; size <= 10000; size *= 10 {
		iters := 1000000 / size
		if quick {
			iters = 200000 / size
		}
		m := map[uint64]uint64{}
		t0 := nanotime()
		for i := 0; i < iters; i++ {
			for j := 0; j < size; j++ {
				m[uint64(j)] = uint64(j)
			}
			for j := 0; j < size; j++ {
				for k := range m {
					delete(m, k)
					break
				}
			}
		}
		if len(m) != 0 {
			fail("pop: not empty")
		}
		fmt.Printf(`,"pop/%d":%.1f`, size, float64(nanotime()-t0)/float64(iters))
	}
	{
		big := 1000000
		iters := 400
		if quick {
			iters = 100
		}
		k := genKeys(big, 1)
		m := map[uint64]uint64{}
		for j := 0; j < big; j++ {
			m[k[j]] = uint64(j)
		}
		for j := 0; j < big; j++ {
			delete(m, k[j])
		}
		t0 := nanotime()
		for i := 0; i < iters; i++ {
			m[0] = 1
			for kk := range m { // Go 1.19's clear(m): compiled to runtime.mapclear
				delete(m, kk)
			}
		}
		if len(m) != 0 {
			fail("clear")
		}
		fmt.Printf(`,"clear_emptied/1000000":%.1f`, float64(nanotime()-t0)/float64(iters))
		for j := 0; j < big; j++ {
			m[k[j]] = uint64(j)
		}
		for j := 0; j < 990000; j++ {
			delete(m, k[j])
		}
		var want uint64
		for j := 990000; j < big; j++ {
			want += uint64(j)
		}
		iters = 200
		if quick {
			iters = 50
		}
		t0 = nanotime()
		for i := 0; i < iters; i++ {
			var s uint64
			cnt := 0
			for _, v := range m {
				s += v
				cnt++
			}
			if s != want || cnt != 10000 {
				fail("sparse iteration")
			}
			sink += s
		}
		fmt.Printf(`,"iter_sparse/1000000-990000":%.1f`, float64(nanotime()-t0)/float64(iters))
	}
	fmt.Printf("}}\n")
}

func main() {
	mode := flag.String("mode", "phases", "phases|latency|shapes")
	keysKind := flag.String("keys", "u64", "u64|str")
	n := flag.Int("n", 1000, "entries")
	reps := flag.Int("reps", 1, "fresh maps per run")
	flag.Parse()
	if *n <= 0 || *reps <= 0 || (*keysKind != "u64" && *keysKind != "str") {
		flag.Usage()
		os.Exit(2)
	}
	if *mode == "shapes" {
		shapes(*reps <= 1)
		return
	}
	keys, miss := genKeys(*n, 1), genKeys(*n, 2)
	var skeys, smiss []string
	str := *keysKind == "str"
	if str {
		skeys, smiss = strKeys(keys), strKeys(miss)
	}
	fmt.Printf(`{"impl":"go","keys":"%s","n":%d,"reps":%d,"mode":"%s"`, *keysKind, *n, *reps, *mode)
	switch *mode {
	case "phases":
		var ns [5]float64
		if str {
			ns = phasesStr(*n, *reps, skeys, smiss, keys)
		} else {
			ns = phasesU64(*n, *reps, keys, miss)
		}
		fmt.Printf(`,"ns":{`)
		for p, name := range phaseNames {
			if p > 0 {
				fmt.Printf(",")
			}
			fmt.Printf(`"%s":%.2f`, name, ns[p])
		}
		fmt.Printf("}")
	case "latency":
		h := &hist{count: make([]uint32, hSize)}
		clk := clockOverhead()
		var mem [3]float64
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		if str {
			mem = latencyStr(*n, *reps, skeys, keys, h)
		} else {
			mem = latencyU64(*n, *reps, keys, h)
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		fmt.Printf(`,"clock_ns":%.1f,"lat_samples":%d,"lat_max_ns":%d,"lat_p9999_ns":%d,"lat_p999_ns":%d,"lat_p50_ns":%d,"lat_max_at":%d,"rss_bpe":%.2f,"peak_bpe":%.2f,"alloc_bpe":%.2f,"invol_csw":%d,"minflt":%d,"shape":null`,
			clk, h.n, h.max, h.quantile(0.9999), h.quantile(0.999), h.quantile(0.5), h.maxAt, mem[0], mem[1], mem[2],
			ru1.Nivcsw-ru0.Nivcsw, ru1.Minflt-ru0.Minflt)
	default:
		flag.Usage()
		os.Exit(2)
	}
	fmt.Printf("}\n")
	runtime.KeepAlive(skeys)
	runtime.KeepAlive(smiss)
}
