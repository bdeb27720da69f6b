package api

import (
	"net/http"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// HTTPStatus maps an error code to its HTTP status (docs/design.md §5).
func HTTPStatus(code enroll.Code) int {
	switch code {
	case enroll.CodeInvalidRequest, enroll.CodeInvalidPublicKey, enroll.CodeInvalidSignature:
		return http.StatusBadRequest
	case enroll.CodeUnauthorized:
		return http.StatusUnauthorized
	case enroll.CodePairingCodeRejected:
		return http.StatusForbidden
	case enroll.CodeNotFound:
		return http.StatusNotFound
	case enroll.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case enroll.CodeWrongState, enroll.CodeConflict:
		return http.StatusConflict
	case enroll.CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case enroll.CodeRateLimited:
		return http.StatusTooManyRequests
	case enroll.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
