package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// WriteJSON answers with status and v as (indented) JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers with status and the one error shape.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, Error{Code: code, Message: msg})
}

// ReadJSON decodes a JSON body of at most limit bytes strictly (unknown
// fields and data after the value are refused). An empty (or blank) body
// is refused unless optional, when it leaves v as it is. On failure it has
// answered 400 invalid_argument or 413 too_large and returns false.
func ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, optional bool) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil:
		WriteError(w, http.StatusBadRequest, "invalid_argument", "reading the body: "+err.Error())
		return false
	case int64(len(body)) > limit:
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", limit))
		return false
	case optional && len(bytes.TrimSpace(body)) == 0:
		return true
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, "invalid_argument", "the body is not the expected JSON: "+err.Error())
		return false
	}
	if d.More() {
		WriteError(w, http.StatusBadRequest, "invalid_argument", "data after the JSON body")
		return false
	}
	return true
}
