'use strict';
// An error answered as Grist does: HTTP status and a JSON body {"error": message, "details"?}.
class ApiError extends Error {
  constructor(status, message, details) {
    super(message);
    this.status = status;
    this.details = details;
  }
}
module.exports = { ApiError };
