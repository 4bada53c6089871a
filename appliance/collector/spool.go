package collector

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/atomicfile"
)

// The spool keeps the runner's telemetry on disk until the control plane
// has it. Records go into segment files, each a run of frames:
//
//	length uint32 | crc32c uint32 | JSON of a frame
//
// A frame is one pull from one agent: its records and where that agent's
// cursor stands after them, written with one write and one fsync, so the
// records and the cursor that says they were taken can never disagree
// after a crash. A torn last frame is cut off when the spool opens.
//
// state.json holds the cursors, the acknowledged mark and the drop totals
// as of when it was written, with the number of frames written by then: it
// is written before any segment is removed, so state.json plus the frames
// numbered after it always say where every agent stands.

const (
	frameHead  = 8
	maxFrame   = 64 << 20
	segSuffix  = ".seg"
	stateFile  = "state.json"
	defaultSeg = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Cursor is where the runner stands with one agent: its boot and the last
// event taken, and the drops it last reported.
type Cursor struct {
	Boot    string `json:"boot"`
	Last    uint64 `json:"last"`
	Dropped uint64 `json:"dropped"`
}

// frame is one append: the records of one pull from the agent Key names,
// and the runner's running drop totals after it.
type frame struct {
	// N numbers the frames the spool ever wrote, from 1.
	N             uint64                `json:"n"`
	Key           string                `json:"key"`
	Cursor        Cursor                `json:"cursor"`
	AgentDropped  uint64                `json:"agentDropped"`
	RunnerDropped uint64                `json:"runnerDropped"`
	Records       []api.TelemetryRecord `json:"records"`
}

type spoolState struct {
	// Frames is how many frames were written when the state was.
	Frames        uint64            `json:"frames"`
	Cursors       map[string]Cursor `json:"cursors"`
	Acked         uint64            `json:"acked"`
	AgentDropped  uint64            `json:"agentDropped"`
	RunnerDropped uint64            `json:"runnerDropped"`
}

// segment is one file: the records first..last (last < first when empty)
// and where each frame starts.
type segment struct {
	path        string
	first, last uint64
	size        int64
	frames      []frameAt
}

type frameAt struct {
	first  uint64 // seq of the frame's first record
	offset int64
}

// Spool is the runner's disk buffer of telemetry, bounded in bytes: past
// the bound the oldest segment goes, and its records not yet acknowledged
// are counted as dropped.
type Spool struct {
	dir    string
	max    int64
	segMax int64
	log    *slog.Logger

	mu     sync.Mutex
	segs   []*segment // oldest first; the last is the one appended to
	cur    *os.File
	next   uint64 // seq of the next record
	frames uint64 // frames written
	state  spoolState
	// added is closed and replaced when records are appended.
	added chan struct{}
}

// OpenSpool opens (or makes) the spool in dir, bounded at max bytes,
// recovering what the last run left: a torn last frame is cut off.
func OpenSpool(dir string, max int64, log *slog.Logger) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make the telemetry spool: %w", err)
	}
	if _, err := atomicfile.RemoveTemps(dir); err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, max: max, segMax: min(defaultSeg, max/4+1), log: log, next: 1,
		state: spoolState{Cursors: map[string]Cursor{}}, added: make(chan struct{})}
	if b, err := os.ReadFile(filepath.Join(dir, stateFile)); err == nil {
		if err := json.Unmarshal(b, &s.state); err != nil {
			return nil, fmt.Errorf("read the telemetry spool's state %s: %w", filepath.Join(dir, stateFile), err)
		}
		if s.state.Cursors == nil {
			s.state.Cursors = map[string]Cursor{}
		}
		s.next, s.frames = s.state.Acked+1, s.state.Frames
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the telemetry spool's state: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		return nil, err
	}
	sort.Strings(names) // zero-padded: in seq order
	for i, name := range names {
		seg, err := s.recover(name, i == len(names)-1)
		if err != nil {
			return nil, err
		}
		s.segs = append(s.segs, seg)
	}
	if err := s.startSegment(); err != nil {
		return nil, err
	}
	return s, nil
}

// recover reads a segment's frames into s; last says whether it was the
// one being appended to, whose torn tail is cut off.
func (s *Spool) recover(path string, last bool) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open telemetry segment: %w", err)
	}
	defer f.Close()
	first, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), segSuffix), 10, 64)
	seg := &segment{path: path, first: first, last: first - 1}
	r := bufio.NewReader(f)
	for {
		fr, n, err := readFrame(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// Only the segment being written can end in a torn frame;
			// damage elsewhere loses the rest of that segment, said.
			if !last {
				s.log.Warn("telemetry segment damaged: the rest of it is lost", "segment", path, "at", seg.size, "err", err)
			}
			if err := f.Truncate(seg.size); err != nil {
				return nil, fmt.Errorf("cut the torn end of %s: %w", path, err)
			}
			break
		}
		if len(fr.Records) > 0 {
			seg.frames = append(seg.frames, frameAt{first: fr.Records[0].Seq, offset: seg.size})
			seg.last = fr.Records[len(fr.Records)-1].Seq
			s.next = max(s.next, seg.last+1)
		}
		seg.size += n
		// What a frame written before the state says, the state says
		// already, or has forgotten on purpose.
		if fr.N > s.frames {
			s.frames = fr.N
			s.state.Cursors[fr.Key] = fr.Cursor
			s.state.AgentDropped = max(s.state.AgentDropped, fr.AgentDropped)
			s.state.RunnerDropped = max(s.state.RunnerDropped, fr.RunnerDropped)
		}
	}
	return seg, nil
}

func readFrame(r io.Reader) (frame, int64, error) {
	var head [frameHead]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, 0, errors.New("torn frame head")
		}
		return frame{}, 0, err
	}
	n := binary.BigEndian.Uint32(head[:4])
	if n > maxFrame {
		return frame{}, 0, fmt.Errorf("frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return frame{}, 0, errors.New("torn frame")
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(head[4:]) {
		return frame{}, 0, errors.New("frame checksum mismatch")
	}
	var fr frame
	if err := json.Unmarshal(body, &fr); err != nil {
		return frame{}, 0, fmt.Errorf("frame: %w", err)
	}
	return fr, frameHead + int64(n), nil
}

// startSegment opens a new segment for appends, named by the next seq.
func (s *Spool) startSegment() error {
	if s.cur != nil {
		s.cur.Close()
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%020d%s", s.next, segSuffix))
	if n := len(s.segs); n > 0 && s.segs[n-1].path == path {
		// The last segment took no records since: append to it.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
		s.cur = f
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("start a telemetry segment: %w", err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.cur = f
	s.segs = append(s.segs, &segment{path: path, first: s.next, last: s.next - 1})
	return nil
}

// Cursor is where the runner stands with the agent key names.
func (s *Spool) Cursor(key string) Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Cursors[key]
}

// Keys names the agents the spool has a cursor for.
func (s *Spool) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.state.Cursors))
	for k := range s.state.Cursors {
		keys = append(keys, k)
	}
	return keys
}

// Forget drops the cursors of agents that are gone.
func (s *Spool) Forget(keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.state.Cursors, k)
	}
	return s.saveState()
}

// Append stores the records of one pull from the agent key names, numbering
// them, together with the agent's cursor after them, and returns once they
// are on disk.
func (s *Spool) Append(key string, c Cursor, recs []api.TelemetryRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.state.Cursors[key]
	agentDropped := s.state.AgentDropped + c.Dropped
	if prev.Boot == c.Boot && c.Dropped >= prev.Dropped {
		agentDropped -= prev.Dropped
	}
	for i := range recs {
		recs[i].Seq = s.next + uint64(i)
	}
	fr := frame{N: s.frames + 1, Key: key, Cursor: c, AgentDropped: agentDropped, RunnerDropped: s.state.RunnerDropped, Records: recs}
	body, err := json.Marshal(fr)
	if err != nil {
		return fmt.Errorf("encode telemetry: %w", err)
	}
	if len(body) > maxFrame {
		return fmt.Errorf("a pull of %d bytes is over the spool's frame bound", len(body))
	}
	buf := make([]byte, frameHead, frameHead+len(body))
	binary.BigEndian.PutUint32(buf[:4], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(body, castagnoli))
	buf = append(buf, body...)
	seg := s.segs[len(s.segs)-1]
	if _, err := s.cur.Write(buf); err != nil {
		// A part written is cut off when the spool next opens; this run
		// must not append after it.
		s.cur.Truncate(seg.size)
		return fmt.Errorf("write telemetry: %w", err)
	}
	if err := s.cur.Sync(); err != nil {
		return fmt.Errorf("sync telemetry: %w", err)
	}
	if len(recs) > 0 {
		seg.frames = append(seg.frames, frameAt{first: s.next, offset: seg.size})
		s.next += uint64(len(recs))
		seg.last = s.next - 1
		close(s.added)
		s.added = make(chan struct{})
	}
	seg.size += int64(len(buf))
	s.frames++
	s.state.Cursors[key] = c
	s.state.AgentDropped = agentDropped
	if seg.size >= s.segMax {
		if err := s.startSegment(); err != nil {
			return err
		}
	}
	return s.bound()
}

// bound drops the oldest segments while the spool is over its bytes.
func (s *Spool) bound() error {
	var total int64
	for _, seg := range s.segs {
		total += seg.size
	}
	var dropped uint64
	for total > s.max && len(s.segs) > 1 {
		old := s.segs[0]
		if old.last > s.state.Acked {
			dropped += old.last - max(old.first, s.state.Acked+1) + 1
			s.state.Acked = old.last
		}
		total -= old.size
		if err := s.forget(1); err != nil {
			return err
		}
	}
	if dropped > 0 {
		s.state.RunnerDropped += dropped
		s.log.Warn("telemetry spool full: dropped the oldest records the control plane does not have yet", "records", dropped, "bound", s.max, "droppedInAll", s.state.RunnerDropped)
		return s.saveState()
	}
	return nil
}

// forget writes the state, then removes the n oldest segments.
func (s *Spool) forget(n int) error {
	if err := s.saveState(); err != nil {
		return err
	}
	for _, seg := range s.segs[:n] {
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove telemetry segment: %w", err)
		}
	}
	s.segs = s.segs[n:]
	return nil
}

func (s *Spool) saveState() error {
	s.state.Frames = s.frames
	b, err := json.Marshal(s.state)
	if err != nil {
		return err
	}
	_, err = atomicfile.WriteFile(filepath.Join(s.dir, stateFile), b, 0o600)
	return err
}

// Ack forgets the records up to last: the control plane has them.
func (s *Spool) Ack(last uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last <= s.state.Acked {
		return nil
	}
	s.state.Acked = min(last, s.next-1)
	n := 0
	for n < len(s.segs)-1 && s.segs[n].last <= s.state.Acked {
		n++
	}
	if n == 0 {
		return s.saveState()
	}
	return s.forget(n)
}

// Drop forgets the records up to last as Ack does, counting those not
// acknowledged before as dropped.
func (s *Spool) Drop(last uint64) error {
	s.mu.Lock()
	if last > s.state.Acked {
		s.state.RunnerDropped += min(last, s.next-1) - s.state.Acked
	}
	s.mu.Unlock()
	return s.Ack(last)
}

// Pending reads, from the oldest record not acknowledged, at most n
// records and, past the first, at most size bytes of events, with the drop
// totals as of now; added is closed when more come.
func (s *Spool) Pending(n, size int) (recs []api.TelemetryRecord, agentDropped, runnerDropped uint64, added <-chan struct{}, err error) {
	s.mu.Lock()
	from := s.state.Acked + 1
	// Copies: appends go on while the segments are read.
	var todo []segment
	for _, seg := range s.segs {
		if seg.last >= from {
			todo = append(todo, segment{path: seg.path, frames: slices.Clone(seg.frames)})
		}
	}
	agentDropped, runnerDropped, added = s.state.AgentDropped, s.state.RunnerDropped, s.added
	upTo := s.next - 1
	s.mu.Unlock()
	for _, seg := range todo {
		if len(recs) >= n || size <= 0 {
			break
		}
		recs, size, err = seg.read(from, upTo, n, size, recs)
		if err != nil {
			return nil, 0, 0, nil, err
		}
	}
	return recs, agentDropped, runnerDropped, added, nil
}

// read appends to recs the segment's records from..upTo, up to n in all
// and while size (what is left of the bytes allowed) lasts. Frames are
// never rewritten, so reading needs no lock; a segment removed meanwhile
// was acknowledged or dropped and is skipped.
func (seg *segment) read(from, upTo uint64, n, size int, recs []api.TelemetryRecord) ([]api.TelemetryRecord, int, error) {
	var offset int64
	for _, fa := range seg.frames {
		if fa.first <= from {
			offset = fa.offset
		}
	}
	f, err := os.Open(seg.path)
	if errors.Is(err, os.ErrNotExist) {
		return recs, size, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read telemetry: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(io.NewSectionReader(f, offset, 1<<62))
	for {
		fr, _, err := readFrame(r)
		if err != nil {
			// The end of what is written (a frame being appended now
			// reads torn): later records come next time.
			return recs, size, nil
		}
		for _, rec := range fr.Records {
			if rec.Seq < from || rec.Seq > upTo {
				continue
			}
			if len(recs) >= n || len(recs) > 0 && size < len(rec.Event) {
				return recs, 0, nil
			}
			recs = append(recs, rec)
			size -= len(rec.Event)
		}
		if len(fr.Records) > 0 && fr.Records[len(fr.Records)-1].Seq >= upTo {
			return recs, size, nil
		}
	}
}

// Close closes the segment being appended to.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Close()
}
