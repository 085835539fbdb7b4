// rdf-test-suite needs an engine module; the protocol, service description and graph store
// manifests only talk to the HTTP endpoint, so these functions are never called.
module.exports = {
  parse: function () { return Promise.reject(new Error('not used by the HTTP suites')); },
  query: function () { return Promise.reject(new Error('not used by the HTTP suites')); },
};
