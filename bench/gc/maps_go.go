// maps_go.go - the map-heavy workload of maps_gomap.c on Go: BT_THREADS
// goroutines, each with a map[uint64]*obj churned the same way (same
// generator, so the same check value).
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

type obj struct {
	next *obj
	v    uint64
}

func rnd(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func envInt(name string, def int64) int64 {
	if s := os.Getenv(name); s != "" {
		v, _ := strconv.ParseInt(s, 10, 64)
		return v
	}
	return def
}

func worker(seed uint64, nkeys, nops int64) uint64 {
	var sum uint64
	m := make(map[uint64]*obj)
	for i := int64(0); i < nkeys; i++ {
		m[uint64(i)] = &obj{v: uint64(i)}
	}
	for i := int64(0); i < nops; i++ {
		r := rnd(&seed)
		k := r % uint64(nkeys)
		switch (r >> 40) & 3 {
		case 0:
			m[k] = &obj{v: k}
		case 1:
			delete(m, k)
		default:
			if p, ok := m[k]; ok && p != nil {
				if p.v == k {
					sum++
				}
			} else {
				m[k] = &obj{v: k}
			}
		}
		if i%(nops/4) == nops/4-1 {
			n := make(map[uint64]*obj)
			for j := int64(0); j < nkeys; j++ {
				if p, ok := m[uint64(j)]; ok {
					n[uint64(j)] = p
				}
			}
			m = n
		}
	}
	return sum + uint64(len(m))
}

func main() {
	nkeys := envInt("MAPS_KEYS", 1<<20)
	nops := envInt("MAPS_OPS", 8<<20)
	nth := int(envInt("BT_THREADS", 2))
	t0 := time.Now()
	sums := make([]uint64, nth)
	var wg sync.WaitGroup
	for i := 0; i < nth; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sums[i] = worker(uint64(i+1), nkeys, nops)
		}(i)
	}
	wg.Wait()
	var check uint64
	for _, s := range sums {
		check += s
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
	fmt.Printf("RESULT go time_s=%.3f gcs=%d max_pause_ms=%.3f p99_pause_ms=%.3f gc_cpu=%.3f rss_mb=%.1f check=%d\n",
		secs, m.NumGC, maxp, p99, m.GCCPUFraction, float64(ru.Maxrss)/1024, check)
}
