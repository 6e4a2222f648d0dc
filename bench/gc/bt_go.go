// bt_go.go - binary-trees on Go's own collector (BT_THREADS goroutines per
// depth, like the C peers' threads).  Pauses come from runtime.MemStats (PauseNs: both STW phases of a
// cycle; the last 256 cycles are kept).
package main

import (
	"sync"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"
)

type node struct{ left, right *node }

func make_(d int) *node {
	if d == 0 {
		return &node{}
	}
	return &node{make_(d - 1), make_(d - 1)}
}

func (t *node) check() uint64 {
	if t.left == nil {
		return 1
	}
	return 1 + t.left.check() + t.right.check()
}

func main() {
	maxd := 20
	if s := os.Getenv("BT_DEPTH"); s != "" {
		maxd, _ = strconv.Atoi(s)
	}
	nth := 2
	if s := os.Getenv("BT_THREADS"); s != "" {
		nth, _ = strconv.Atoi(s)
	}
	lived := 0
	if s := os.Getenv("BT_LIVE_DEPTH"); s != "" {
		lived, _ = strconv.Atoi(s)
	}
	t0 := time.Now()
	var total uint64
	var ballast *node
	if lived > 0 {
		ballast = make_(lived)
	}
	long := make_(maxd)
	for d := 4; d <= maxd; d += 2 {
		iters := 1 << (maxd - d + 4)
		chks := make([]uint64, nth)
		var wg sync.WaitGroup
		for k := 0; k < nth; k++ {
			n := iters / nth
			if k < iters%nth {
				n++
			}
			wg.Add(1)
			go func(k, n int) {
				defer wg.Done()
				for i := 0; i < n; i++ {
					chks[k] += make_(d).check()
				}
			}(k, n)
		}
		wg.Wait()
		var chk uint64
		for _, c := range chks {
			chk += c
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iters, d, chk)
		total += chk
	}
	ll := long.check()
	fmt.Printf("long lived tree of depth %d\t check: %d\n", maxd, ll)
	total += ll
	if ballast != nil {
		total += ballast.check()
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
