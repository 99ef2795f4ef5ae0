package wire

// StatusTopic is where a device reports its status over MQTT ("online",
// "offline", a small JSON object), and the only topic its last will may
// name.
func StatusTopic(device string) string { return TopicPrefix + device + "/status" }

// EnrollTopic is where a device without a certificate yet publishes its
// enrollment request over MQTT (the body of POST /v1/enroll).
func EnrollTopic(device string) string { return TopicPrefix + device + "/enroll" }

// EnrollAnswerTopic is where the platform answers an enrollment over MQTT:
// the enrollment, or an error {"code", "message"}.
func EnrollAnswerTopic(device string) string { return TopicPrefix + device + "/enroll/answer" }
