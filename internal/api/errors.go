package api

import (
	"net/http"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// HTTPStatus maps an error code to its HTTP status (docs/design.md §5).
func HTTPStatus(code string) int {
	switch code {
	case string(enroll.CodeInvalidRequest), string(enroll.CodeInvalidPublicKey), string(enroll.CodeInvalidSignature):
		return http.StatusBadRequest
	case string(enroll.CodeUnauthorized):
		return http.StatusUnauthorized
	case string(enroll.CodePairingCodeRejected):
		return http.StatusForbidden
	case string(enroll.CodeNotFound):
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case string(enroll.CodeWrongState), string(enroll.CodeConflict):
		return http.StatusConflict
	case CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case string(enroll.CodeUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
