-- Argo CD health of every launch.modelops.dev kind (ModelTemplate, Model, ModelDeployment,
-- FineTuningJob), from its Ready condition.
--   Healthy      Ready=True for the current generation (a FineTuningJob: Succeeded)
--   Progressing  no status yet, the operator has not observed the current generation, Ready
--                is Unknown, or Ready=False for a passing reason (Pending, RollingOut,
--                WorkersNotReady, ...)
--   Degraded     Ready=False for a reason that needs a person: the spec, the image, the
--                container or the cluster cannot make it ready (the operator sets Stalled=True
--                for these, which kstatus reports as Failed)
--   Suspended    Ready=False with BrokerNotConfigured: valid and stored, nothing deployed, and
--                nothing will change until the operator is given a broker; or Cancelled: a
--                FineTuningJob stopped on purpose (spec.cancelled), final
-- Kept in sync with argocd-cm.yaml beside it (tests/unit/test_argocd_health.py checks).
local degraded_reasons = {
  InvalidSpec = true,
  Unschedulable = true,
  ErrImagePull = true,
  ImagePullBackOff = true,
  InvalidImageName = true,
  CrashLoopBackOff = true,
  CreateContainerConfigError = true,
  CreateContainerError = true,
  JobFailed = true,
  ApplyFailed = true,
  Evicted = true,
  ProgressDeadlineExceeded = true,
  FailedCreate = true,
  InvalidParameters = true,
  TemplateMissing = true,
  ModelMissing = true,
  TemplateInvalid = true,
  RolloutBlocked = true,
  JobLost = true,
}
local suspended_reasons = {
  BrokerNotConfigured = true,
  Cancelled = true,
}

local function health(status, message)
  return { status = status, message = message }
end

local function describe(condition, fallback)
  local text = condition.reason or fallback
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local function evaluate(obj)
  local generation = (obj.metadata or {}).generation
  local status = obj.status
  if status == nil then
    return health("Progressing", "Waiting for the operator to report status")
  end
  if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
    return health("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
  end
  local ready = nil
  for _, condition in ipairs(status.conditions or {}) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
  if ready == nil then
    return health("Progressing", "Waiting for the Ready condition")
  end
  if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
    return health("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
  end
  if ready.status == "True" then
    return health("Healthy", describe(ready, "Ready"))
  end
  if ready.status == "False" and degraded_reasons[ready.reason] then
    return health("Degraded", describe(ready, "NotReady"))
  end
  if ready.status == "False" and suspended_reasons[ready.reason] then
    return health("Suspended", describe(ready, "NotReady"))
  end
  return health("Progressing", describe(ready, "NotReady"))
end

return evaluate(obj)
