// sh_go.go - the mt-gcbench and quads shapes (sh_common.h) on Go's own
// collector: SH_THREADS goroutines each run the whole shape, as the C
// peers' threads do.  Pauses from runtime.MemStats.PauseNs (last 256 cycles).

package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type bnode struct {
	left, right *bnode
	i, j        int32
}

type qnode struct{ kid [4]*qnode }

func env(name string, dflt int) int {
	if s := os.Getenv(name); s != "" {
		v, err := strconv.Atoi(s)
		if err == nil {
			return v
		}
	}
	return dflt
}

func nodes(d int) int64 { return (int64(1) << (d + 1)) - 1 }

func populate(d int, n *bnode) {
	if d <= 0 {
		return
	}
	n.left = &bnode{}
	n.right = &bnode{}
	populate(d-1, n.left)
	populate(d-1, n.right)
}

func makeTree(d int) *bnode {
	n := &bnode{}
	if d > 0 {
		n.left = makeTree(d - 1)
		n.right = makeTree(d - 1)
	}
	return n
}

func count(n *bnode) int64 {
	if n == nil {
		return 0
	}
	return 1 + count(n.left) + count(n.right)
}

func mtgcbench() int64 {
	var check int64
	maxd := env("SH_DEPTH", 16)
	check += count(makeTree(maxd + 2))
	longLived := &bnode{}
	populate(maxd, longLived)
	arr := make([]float64, 500000)
	for k := 0; k < 500000/2; k++ {
		arr[k] = 1.0 / float64(k+1)
	}
	for round := 0; round < env("SH_ROUNDS", 4); round++ {
		for d := 4; d <= maxd; d += 2 {
			iters := 2 * nodes(maxd+2) / nodes(d)
			for k := int64(0); k < iters; k++ {
				t := &bnode{}
				populate(d, t)
				check += count(t)
				check += count(makeTree(d))
			}
		}
	}
	check += count(longLived)
	if arr[1000] != 1.0/1001 {
		panic("array")
	}
	return check
}

func qmake(d int) *qnode {
	q := &qnode{}
	if d > 0 {
		for k := 0; k < 4; k++ {
			q.kid[k] = qmake(d - 1)
		}
	}
	return q
}

func qcount(q *qnode) int64 {
	if q == nil {
		return 0
	}
	c := int64(1)
	for k := 0; k < 4; k++ {
		c += qcount(q.kid[k])
	}
	return c
}

func quads() int64 {
	var check int64
	live := qmake(env("SH_QDEPTH", 10))
	liveNodes := qcount(live)
	check += liveNodes
	allocated := int64(0)
	limit := int64(env("SH_QFACTOR", 20)) * liveNodes
	for round := int64(0); allocated < limit; round++ {
		check += qcount(qmake(3))
		allocated += 85
		if round%1000 == 999 && qcount(live) != liveNodes {
			panic("live tree")
		}
	}
	return check + qcount(live)
}

func main() {
	shape := mtgcbench
	if os.Getenv("SHAPE") == "quads" {
		shape = quads
	}
	nth := env("SH_THREADS", 1)
	t0 := time.Now()
	checks := make([]int64, nth)
	var wg sync.WaitGroup
	for k := 0; k < nth; k++ {
		wg.Add(1)
		go func(k int) { defer wg.Done(); checks[k] = shape() }(k)
	}
	wg.Wait()
	var total int64
	for _, c := range checks {
		total += c
	}
	secs := time.Since(t0).Seconds()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	n := int(m.NumGC)
	if n > 256 {
		n = 256
	}
	p := make([]uint64, 0, n)
	for i := 0; i < n; i++ {
		p = append(p, m.PauseNs[i])
	}
	sort.Slice(p, func(i, j int) bool { return p[i] < p[j] })
	var maxp, p99 float64
	if n > 0 {
		maxp = float64(p[n-1]) / 1e6
		k := int(float64(n) * 0.99)
		if k >= n {
			k = n - 1
		}
		p99 = float64(p[k]) / 1e6
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("RESULT go time_s=%.3f gcs=%d max_pause_ms=%.3f p99_pause_ms=%.3f gc_cpu=%.3f rss_mb=%.1f cpu_s=%.3f check=%d\n",
		secs, m.NumGC, maxp, p99, m.GCCPUFraction, float64(ru.Maxrss)/1024, float64(ru.Utime.Sec+ru.Stime.Sec)+float64(ru.Utime.Usec+ru.Stime.Usec)/1e6, total)
}
