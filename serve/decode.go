package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/cl-dev/cl/extract/imageproc"
)

// Request bodies the routes accept (docs/SERVE.md, /openapi.json):
//
//	image/*              one image (predict; learn with ?id=…&class=…)
//	multipart/form-data  several images, one per file part, in order (learn: a
//	                     first part named "samples" with [{"id","class"},…])
//	application/json     feature vectors: predict {"features": [[…], …]};
//	                     learn {"samples": [{"id", "class", "features": […]}]};
//	                     forget {"classes": […]} or {"ids": […]}

// readBody reads the whole body within the size limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, bodyErr(err, limit)
	}
	return b, nil
}

func bodyErr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errf(413, "body_too_large", "the request body is over the %d-byte limit (--max-body)", limit)
	}
	return errf(400, "bad_body", "reading the request body: %v", err)
}

// mediaType returns the request's media type, lower case, without
// parameters ("" when absent).
func mediaType(r *http.Request) (string, map[string]string) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid", nil
	}
	return strings.ToLower(mt), params
}

// decodeJSON strictly decodes one JSON value from body into v.
func decodeJSON(body []byte, v any) error {
	if !utf8.Valid(body) {
		// encoding/json would silently turn bad bytes into U+FFFD, merging
		// distinct class names.
		return errf(400, "bad_json", "the JSON body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(400, "bad_json", "the JSON body is invalid: %v", err)
	}
	if dec.More() {
		return errf(400, "bad_json", "the JSON body has data after its value")
	}
	return nil
}

// imageDecoder turns encoded images into the backbone's input within the
// pixel limit.
type imageDecoder struct {
	pp        *imageproc.Preprocessor
	maxPixels int64
	sem       chan struct{} // bounds concurrent decodes (and their memory)
}

// decode decodes one image into dst [3·S·S]. The image's declared size is
// checked against maxPixels from its header before any pixel is decoded.
func (d *imageDecoder) decode(data []byte, dst []float32, which string) (err error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if _, e := imageproc.Decode(data); e != nil {
			return errf(400, "bad_image", "%s: %v", which, e)
		}
		return errf(400, "bad_image", "%s: %v", which, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > d.maxPixels {
		return errf(413, "image_too_large", "%s: the %s image is %d×%d pixels, over the limit of %d (--max-pixels)", which, format, cfg.Width, cfg.Height, d.maxPixels)
	}
	d.sem <- struct{}{}
	defer func() { <-d.sem }()
	defer func() {
		if p := recover(); p != nil {
			err = errf(400, "bad_image", "%s: the decoder failed: %v", which, p)
		}
	}()
	img, err := imageproc.Decode(data)
	if err != nil {
		return errf(400, "bad_image", "%s: %v", which, err)
	}
	if err := d.pp.Apply(img, dst); err != nil {
		return errf(400, "bad_image", "%s: %v", which, err)
	}
	return nil
}

// part is one image of a multipart request.
type part struct {
	name string
	data []byte
}

// readMultipart reads the parts of a multipart/form-data body within the
// size limit: the JSON field named meta (if meta != "") and every file
// part (a part with a file name or an image/* content type), at most
// maxImages of them.
func readMultipart(w http.ResponseWriter, r *http.Request, params map[string]string, limit int64, maxImages int, meta string) (metaJSON []byte, images []part, err error) {
	if params["boundary"] == "" {
		return nil, nil, errf(400, "bad_multipart", "multipart/form-data without a boundary parameter")
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, limit), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, multipartErr(err, limit)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, nil, multipartErr(err, limit)
		}
		ct := strings.ToLower(p.Header.Get("Content-Type"))
		switch {
		case meta != "" && p.FormName() == meta && p.FileName() == "":
			metaJSON = data
		case p.FileName() != "" || strings.HasPrefix(ct, "image/"):
			if len(images) == maxImages {
				return nil, nil, errf(413, "too_many_images", "more than %d images in one request (--max-images)", maxImages)
			}
			name := p.FileName()
			if name == "" {
				name = p.FormName()
			}
			images = append(images, part{name: name, data: data})
		default:
			return nil, nil, errf(400, "bad_multipart", "unexpected form field %q (send images as file parts%s)", p.FormName(), metaHint(meta))
		}
	}
	if len(images) == 0 {
		return nil, nil, errf(400, "no_images", "the multipart body has no image parts")
	}
	return metaJSON, images, nil
}

func metaHint(meta string) string {
	if meta == "" {
		return ""
	}
	return fmt.Sprintf(" and the sample list as the field %q", meta)
}

func multipartErr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errf(413, "body_too_large", "the request body is over the %d-byte limit (--max-body)", limit)
	}
	return errf(400, "bad_multipart", "reading the multipart body: %v", err)
}
