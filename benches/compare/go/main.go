// Command automemlimit-worker is the Go contender of `cargo xtask compare`: the same growing
// cache as the other languages' workers (4 MiB entries at --rate MiB/s up to --total MiB), with
// the real github.com/KimMachineGun/automemlimit module setting GOMEMLIMIT to 90% of the cgroup
// limit at start. GOMEMLIMIT makes the garbage collector run harder near the limit; it cannot
// free a cache the program still references, so the worker dies at the limit like the unguarded
// one, after more GC work.
//
//	automemlimit-worker [--total 384] [--rate 256] [--step 4] [--warm 0]
//	automemlimit-worker --print-limit   # what automemlimit computes here, as JSON
//	automemlimit-worker --print-limit --wait [--refresh 1s]
//	    # the same, then again (GOMEMLIMIT as it stands) after each line read on stdin: the
//	    # truth table's "moved process" probe (--refresh: automemlimit's WithRefreshInterval)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func main() {
	total := flag.Float64("total", 384, "MiB requested in all")
	rate := flag.Float64("rate", 256, "MiB/s")
	step := flag.Float64("step", 4, "MiB per request")
	warm := flag.Float64("warm", 0, "MiB cached without pause before --rate applies (a cache already warm)")
	printLimit := flag.Bool("print-limit", false, "print what automemlimit computes and exit")
	wait := flag.Bool("wait", false, "with --print-limit: print GOMEMLIMIT again after each line on stdin")
	refresh := flag.Duration("refresh", 0, "automemlimit's WithRefreshInterval (0: its default, no refresh)")
	flag.Parse()

	opts := []memlimit.Option{memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup)}
	if *refresh > 0 {
		opts = append(opts, memlimit.WithRefreshInterval(context.Background(), *refresh))
	}
	limit, err := memlimit.Set(opts...)
	if *printLimit {
		out := map[string]any{"gomemlimit": limit, "error": nil}
		if err != nil {
			out["error"] = err.Error()
		}
		_ = json.NewEncoder(os.Stdout).Encode(out)
		for in := bufio.NewScanner(os.Stdin); *wait && in.Scan(); {
			_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"gomemlimit": debug.SetMemoryLimit(-1), "error": nil})
		}
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "automemlimit: %v\n", err)
	}
	size := int(*step * (1 << 20))
	n := int(*total*(1<<20)) / size
	cache := make([][]byte, 0, n)
	start := time.Now()
	pacedFrom := start
	for i := 0; i < n; i++ {
		v := make([]byte, size)
		for j := 0; j < size; j += 4096 {
			v[j] = byte(i%251 + 1) // touch every page
		}
		cache = append(cache, v) // a live cache: nothing for the GC to free
		done := float64(i+1)**step - *warm
		if done <= 0 {
			pacedFrom = time.Now() // still warming: no pause
			continue
		}
		due := time.Duration(done / *rate * float64(time.Second))
		if wait := due - time.Since(pacedFrom); wait > 0 {
			time.Sleep(wait)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{
		"served": n, "cached": len(cache) * size, "gomemlimit": debug.SetMemoryLimit(-1),
		"num_gc": ms.NumGC, "seconds": time.Since(start).Seconds(),
	})
}
