// mh_go.go - the map-heavy workload (see mh_common.h) on Go's own map and
// collector: two goroutines, each with a map[uint64]*rec.  Pauses come from
// runtime.MemStats.PauseNs (the last 256 cycles).
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

type rec struct {
	link     *rec
	key, ver uint64
	pad      [3]uint64
}

func env(name string, dflt int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return dflt
}

func next(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func mutator(id int, live, ops int, out *uint64, wg *sync.WaitGroup) {
	defer wg.Done()
	s, sum := uint64(id)+1, uint64(0)
	m := map[uint64]*rec{}
	var prev *rec
	for i := 0; i < live; i++ {
		prev = &rec{link: prev, key: uint64(i)}
		m[uint64(i)] = prev
	}
	for n := 0; n < ops; n++ {
		r := next(&s)
		k, j := (r&0xffffffff)%uint64(live), ((r>>32)&0xfffffff)%uint64(live)
		op := r >> 60
		x := m[k]
		if x.key != k {
			panic("record damaged")
		}
		switch {
		case op < 10:
			sum += x.ver
		case op < 14:
			m[k] = &rec{link: m[j], key: k, ver: x.ver + 1}
		case op == 14:
			v := x.ver + 1
			delete(m, k)
			m[k] = &rec{key: k, ver: v}
		default:
			x.link = m[j]
		}
	}
	for i := 0; i < live; i++ {
		sum += m[uint64(i)].ver
	}
	*out = sum
}

func main() {
	live, ops := env("MH_LIVE", 1000000), env("MH_OPS", 8000000)
	t0 := time.Now()
	var wg sync.WaitGroup
	sums := make([]uint64, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go mutator(i, live, ops, &sums[i], &wg)
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := int(ms.NumGC)
	if n > 256 {
		n = 256
	}
	p := make([]uint64, n)
	copy(p, ms.PauseNs[:n])
	sort.Slice(p, func(a, b int) bool { return p[a] < p[b] })
	var maxp, p99 float64
	if n > 0 {
		maxp = float64(p[n-1]) / 1e6
		i := int(float64(n) * 0.99)
		if i >= n {
			i = n - 1
		}
		p99 = float64(p[i]) / 1e6
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("RESULT go time_s=%.3f gcs=%d max_pause_ms=%.3f p99_pause_ms=%.3f rss_mb=%.1f cpu_s=%.3f gc_cpu=%.3f check=%d\n",
		secs, ms.NumGC, maxp, p99, float64(ru.Maxrss)/1024, float64(ru.Utime.Sec+ru.Stime.Sec)+float64(ru.Utime.Usec+ru.Stime.Usec)/1e6, ms.GCCPUFraction, sums[0]+sums[1])
}
