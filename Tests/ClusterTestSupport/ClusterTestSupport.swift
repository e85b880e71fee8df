// ClusterTestSupport
