// bench_goload: a closed-loop unary load client on grpc-go, the second client of bench/run.sh
// (the first is bench_loadgen, on grpc++). Same load and the same JSON line as bench_loadgen's
// closed mode, so bench/table.py reads both:
//
//	bench_goload --target 127.0.0.1:P --concurrency 64 --duration 5 --warmup 1 [--payload 64]
//	             [--method /bench.Echo/Unary] [--pid PID]...
//
// `concurrency` goroutines share one ClientConn (one HTTP/2 connection, as bench_loadgen's one
// channel); each makes a call, waits for it, makes the next. The message is raw bytes (a
// pass-through codec: no protobuf), every call has a 10 s deadline, and only calls that complete
// inside the window (after the warm-up, for `duration` seconds) count. With --pid (repeatable),
// the processes' CPU time (/proc/PID/stat utime+stime) over the window, per 1,000 calls.
//
// Built offline from Debian's golang-go and golang-google-grpc-dev (GOPATH mode; bench/run.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// rawCodec passes the message bytes through untouched.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

type pids []int

func (p *pids) String() string { return fmt.Sprint(*p) }
func (p *pids) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err == nil {
		*p = append(*p, n)
	}
	return err
}

// cpuSeconds: utime + stime of a process, from /proc/PID/stat (clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

// resetPeakRSS and peakRSSKiB: VmHWM of each process, reset at the window's start (Linux >= 4.0),
// summed at its end.
func resetPeakRSS(ps pids) {
	for _, p := range ps {
		os.WriteFile("/proc/"+strconv.Itoa(p)+"/clear_refs", []byte("5"), 0)
	}
}

func peakRSSKiB(ps pids) int64 {
	var total int64
	for _, p := range ps {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				total += n
			}
		}
	}
	return total
}

func totalCPU(ps pids) float64 {
	t := 0.0
	for _, p := range ps {
		t += cpuSeconds(p)
	}
	return t
}

func main() {
	target := flag.String("target", "", "host:port")
	concurrency := flag.Int("concurrency", 1, "calls in flight")
	duration := flag.Float64("duration", 5, "measured seconds")
	warmup := flag.Float64("warmup", 1, "seconds before the window")
	payload := flag.Int("payload", 64, "request bytes")
	method := flag.String("method", "/bench.Echo/Unary", "full method name")
	mode := flag.String("mode", "closed", "closed (the only mode)")
	var procs pids
	flag.Var(&procs, "pid", "a process whose CPU time to report (repeatable)")
	flag.Parse()
	if *target == "" || *mode != "closed" || *concurrency < 1 {
		fmt.Fprintln(os.Stderr, "usage: bench_goload --target HOST:PORT [--concurrency N] [--duration S] [--warmup S] [--pid PID]...")
		os.Exit(2)
	}

	conn, err := grpc.Dial(*target, grpc.WithInsecure(), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		fmt.Printf("{\"error\":%q}\n", err.Error())
		os.Exit(1)
	}
	defer conn.Close()

	request := []byte(strings.Repeat("x", *payload))
	start := time.Now().Add(time.Duration(*warmup * float64(time.Second)))
	end := start.Add(time.Duration(*duration * float64(time.Second)))

	var mu sync.Mutex
	var latencies []time.Duration
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < *concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myCodes := map[int]int{}
			for n := 0; n < 100000000; n++ {
				began := time.Now()
				if !began.Before(end) {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var reply []byte
				err := conn.Invoke(ctx, *method, &request, &reply)
				cancel()
				done := time.Now()
				if began.Before(start) || done.After(end) {
					continue // outside the window
				}
				mine = append(mine, done.Sub(began))
				myCodes[int(status.Code(err))]++
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			for c, k := range myCodes {
				codes[c] += k
			}
			mu.Unlock()
		}()
	}
	// The proxy's CPU time over the same window as the calls.
	time.Sleep(time.Until(start))
	cpuStart := totalCPU(procs)
	resetPeakRSS(procs)
	time.Sleep(time.Until(end))
	cpuEnd := totalCPU(procs)
	hwm := peakRSSKiB(procs)
	wg.Wait()

	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(latencies)))
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return float64(latencies[i].Nanoseconds()) / 1000
	}
	calls := len(latencies)
	codeText := []string{}
	for c, k := range codes {
		codeText = append(codeText, fmt.Sprintf("\"%d\":%d", c, k))
	}
	sort.Strings(codeText)
	cpu := 0.0
	if len(procs) > 0 {
		cpu = cpuEnd - cpuStart
	}
	perK := 0.0
	if calls > 0 && len(procs) > 0 {
		perK = cpu * 1000 / float64(calls)
	}
	maxUs := 0.0
	if calls > 0 {
		maxUs = float64(latencies[calls-1].Nanoseconds()) / 1000
	}
	fmt.Printf("{\"mode\":\"closed\",\"client\":\"grpc-go\",\"concurrency\":%d,\"rate\":0,\"secs\":%.3f,"+
		"\"calls\":%d,\"ok\":%d,\"rps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"+
		"\"p999_us\":%.1f,\"max_us\":%.1f,\"codes\":{%s},\"dropped\":0,\"proxy_cpu_s\":%.3f,"+
		"\"proxy_cpu_s_per_1k\":%.4f,\"proxy_hwm_kb\":%d,\"client_cpu_s\":0}\n",
		*concurrency, *duration, calls, codes[0], float64(calls) / *duration, pct(50), pct(90),
		pct(99), pct(99.9), maxUs, strings.Join(codeText, ","), cpu, perK, hwm)
}
