package salesforce

import (
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Salesforce's REST API accepts compressed request bodies and compresses
// responses for clients that ask (reference §2.1: "Accept-Encoding: gzip /
// Content-Encoding: gzip supported"); clients such as go-salesforce's
// WithCompressionHeaders gzip every request body. The emulator therefore
// decodes gzip (and deflate, which Salesforce also documents) request bodies
// under /services/data and gzips responses of at least gzipMinSize bytes when
// Accept-Encoding allows gzip. Smaller responses go out plain: Salesforce does
// not promise to compress, so a client must check Content-Encoding anyway.

// gzipMinSize is the smallest response body the emulator compresses.
const gzipMinSize = 1024

// gzipWriters pools response compressors (a flate compressor is large).
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// withCompression decodes r's body per its Content-Encoding and, when the
// client accepts gzip, returns a writer that compresses large bodies; done
// must be called after the handler. A Content-Encoding the emulator cannot
// decode is answered 415 here (ok false).
func withCompression(w http.ResponseWriter, r *http.Request) (_ http.ResponseWriter, done func(), ok bool) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip", "deflate":
		// Clients send the header on bodiless GETs too; there is nothing to decode.
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			break
		}
		body, err := decodedBody(enc, r.Body)
		if err == io.EOF {
			body, err = http.NoBody, nil
		}
		if err != nil {
			writeError(w, errJSONParser("could not read the request body: "+err.Error()))
			return nil, nil, false
		}
		r.Body = body
		r.Header.Del("Content-Encoding")
		r.Header.Del("Content-Length")
		r.ContentLength = -1
	default:
		writeError(w, newErr(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE",
			"Content-Encoding header specified in HTTP request is not supported: "+enc))
		return nil, nil, false
	}
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) || r.Method == http.MethodHead {
		return w, func() {}, true
	}
	gw := &gzipResponseWriter{ResponseWriter: w}
	return gw, gw.finish, true
}

// decodedBody wraps body in a gzip or zlib (HTTP "deflate") reader. The
// stream header is read here, so a body that is not in the announced
// encoding fails before the handler runs.
func decodedBody(enc string, body io.ReadCloser) (io.ReadCloser, error) {
	var rd io.ReadCloser
	var err error
	if enc == "deflate" {
		rd, err = zlib.NewReader(body)
	} else {
		rd, err = gzip.NewReader(body)
	}
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{rd, body}, nil
}

// acceptsGzip reports whether an Accept-Encoding value lists gzip (or *)
// with a non-zero quality.
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		q := 1.0
		if k, val, found := strings.Cut(strings.TrimSpace(params), "="); found && strings.EqualFold(strings.TrimSpace(k), "q") {
			if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				q = f
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}

// gzipResponseWriter holds back the status and the first gzipMinSize bytes;
// a body that reaches that size is sent gzip-compressed, a smaller one plain.
type gzipResponseWriter struct {
	http.ResponseWriter
	status int
	buf    []byte
	gz     *gzip.Writer
	plain  bool // headers sent, body passes through uncompressed
}

// WriteHeader records the status; bodiless statuses are sent at once.
func (g *gzipResponseWriter) WriteHeader(status int) {
	if g.status != 0 || g.plain || g.gz != nil {
		return
	}
	g.status = status
	if status < http.StatusOK || status == http.StatusNoContent || status == http.StatusNotModified {
		g.plain = true
		g.ResponseWriter.WriteHeader(status)
	}
}

// Write buffers until the body is large enough to compress.
func (g *gzipResponseWriter) Write(p []byte) (int, error) {
	if g.status == 0 {
		g.WriteHeader(http.StatusOK)
	}
	switch {
	case g.plain:
		return g.ResponseWriter.Write(p)
	case g.gz != nil:
		return g.gz.Write(p)
	}
	g.buf = append(g.buf, p...)
	if len(g.buf) < gzipMinSize {
		return len(p), nil
	}
	h := g.Header()
	h.Set("Content-Encoding", "gzip")
	h.Add("Vary", "Accept-Encoding")
	h.Del("Content-Length")
	g.ResponseWriter.WriteHeader(g.status)
	g.gz = gzipWriters.Get().(*gzip.Writer)
	g.gz.Reset(g.ResponseWriter)
	buf := g.buf
	g.buf = nil
	if _, err := g.gz.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finish flushes the compressor, or sends a small body plain.
func (g *gzipResponseWriter) finish() {
	switch {
	case g.gz != nil:
		_ = g.gz.Close()
		g.gz.Reset(io.Discard)
		gzipWriters.Put(g.gz)
		g.gz = nil
	case !g.plain:
		if g.status == 0 {
			g.status = http.StatusOK
		}
		g.plain = true
		g.ResponseWriter.WriteHeader(g.status)
		if len(g.buf) > 0 {
			_, _ = g.ResponseWriter.Write(g.buf)
		}
	}
}
