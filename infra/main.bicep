// Hoist on Azure: a Function App on Flex Consumption (Node 22) with a user-assigned identity that
// reaches its storage account (no shared key), the target registries, optional source
// registries, Key Vault and Application Insights. Deployed at resource-group scope: `azd up`
// (azure.yaml) or `az deployment group create` (docs/deploy.md).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME); seeds resource names.')
param environmentName string

@description('Region of every resource.')
param location string = resourceGroup().location

// ---- registries -----------------------------------------------------------------------------

@description('HOIST_TARGET_REGISTRY: the login servers imports may write to, comma-separated, the default first (e.g. myregistry.azurecr.io).')
param targetRegistry string

@description('Names of the target Azure Container Registries, comma-separated, in registryResourceGroup, that the identity gets a role on. Empty for registries outside Azure.')
param targetRegistryNames string = ''

@description('Role on the target registries: AcrPush, or ContainerRegistryDataImporter (Container Registry Data Importer and Data Reader).')
@allowed([
  'AcrPush'
  'ContainerRegistryDataImporter'
])
param targetRegistryRole string = 'AcrPush'

@description('Names of Azure Container Registries, comma-separated, in registryResourceGroup, that imports read with the identity (AcrPull).')
param sourceRegistryNames string = ''

@description('Resource group of the registries named above; empty for this one.')
param registryResourceGroup string = ''

@description('An upstream registry (in registryResourceGroup) whose pushes reach the upstreamPush function through an Event Grid system topic. Set it once the code is deployed: Event Grid checks that the function exists.')
param upstreamRegistryName string = ''

// ---- HOIST_* settings (README.md, Settings) --------------------------------------------------

@description('HOIST_TARGET_USERNAME: user for target registries outside Entra ID; empty to use the identity.')
param targetUsername string = ''

@secure()
@description('HOIST_TARGET_PASSWORD, stored in Key Vault; empty when targetUsername is.')
param targetPassword string = ''

@secure()
@description('HOIST_SECRET_KEY: base64 of 32 random bytes (openssl rand -base64 32), stored in Key Vault. Empty: imports with credentials are refused.')
param secretKey string = ''

@secure()
@description('HOIST_API_KEY, stored in Key Vault; empty to rely on function keys alone.')
param apiKey string = ''

@description('HOIST_ALLOWED_SOURCES: host patterns a source must match (docker.io,*.azurecr.io); empty for any.')
param allowedSources string = ''

@description('HOIST_ALLOWED_PRIVATE_REGISTRIES: registries reached on private addresses (a private endpoint, a VNet).')
param allowedPrivateRegistries string = ''

@description('HOIST_TIME_BUDGET_SECONDS: copying per invocation before a continuation; inside host.json functionTimeout (10 minutes) with 2 minutes to spare.')
param timeBudgetSeconds string = '480'

@description('HOIST_JOB_LEASE_SECONDS')
param jobLeaseSeconds string = '60'

@description('HOIST_MAX_MANIFESTS: manifests per import (az acr import allows 50).')
param maxManifests string = '50'

@description('HOIST_MAX_BLOB_BYTES: largest blob per import; empty for 200 GiB.')
param maxBlobBytes string = ''

@description('HOIST_CHUNK_SIZE_BYTES; empty for 4 MiB.')
param chunkSizeBytes string = ''

@description('HOIST_CONCURRENCY; empty for 4.')
param concurrency string = ''

@description('HOIST_RETRY_ATTEMPTS')
param retryAttempts string = '5'

@description('HOIST_MAX_REQUESTS_PER_HOST: concurrent requests per registry host; empty for the default.')
param maxRequestsPerHost string = ''

// ---- Azure identity for registries (README.md) -------------------------------------------------

@description('HOIST_ACR_REGISTRIES: registries besides *.azurecr.io/.cn/.us and the targets that may receive the identity\'s ACR token (an ACR custom domain), comma-separated.')
param acrRegistries string = ''

@description('HOIST_ACR_AUDIENCE: Entra\'s resource for ACR tokens; empty for public Azure.')
param acrAudience string = ''

@description('HOIST_ARM_ENDPOINT: Azure Resource Manager, which resolves registry resource IDs; empty for environment().resourceManager.')
param armEndpoint string = ''

@description('HOIST_ARM_AUDIENCE: Entra\'s resource for Resource Manager tokens; empty for the ARM endpoint.')
param armAudience string = ''

// ---- mirroring (README.md "Mirroring") -------------------------------------------------------

@description('HOIST_RESYNC_SCHEDULE: NCRONTAB (with seconds) of the resync timer; empty for every 15 minutes.')
param resyncSchedule string = ''

@description('HOIST_RESYNC_CONCURRENCY: upstream requests in flight per registry host during a resync; empty for 4.')
param resyncConcurrency string = ''

@description('HOIST_RATE_LIMIT_RESERVE: a resync stops asking a host once its ratelimit-remaining is this or lower; empty for 10.')
param rateLimitReserve string = ''

// ---- scale ----------------------------------------------------------------------------------

@description('Flex Consumption: most instances.')
param maximumInstanceCount int = 40

@description('Flex Consumption: memory per instance (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

var suffix = uniqueString(subscription().id, resourceGroup().id, environmentName)
var registryGroup = empty(registryResourceGroup) ? resourceGroup().name : registryResourceGroup
var targetNames = filter(map(split(targetRegistryNames, ','), name => trim(name)), name => !empty(name))
var sourceNames = filter(map(split(sourceRegistryNames, ','), name => trim(name)), name => !empty(name))
var tags = { 'azd-env-name': environmentName }
var deploymentContainer = 'app-package'

// Built-in role definition ids (the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-hoist-${suffix}'
  location: location
  tags: tags
}

// ---- storage: the host's, Hoist's tables and queue, and the deployment package -------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'sthoist${suffix}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    // Identity only: no account key works, for the app or for the deployment.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
  name: guid(storage.id, identity.id, role)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

// ---- secrets ------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-hoist-${take(suffix, 13)}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource targetPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(targetPassword)) {
  parent: vault
  name: 'hoist-target-password'
  properties: { value: targetPassword }
}

resource secretKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretKey)) {
  parent: vault
  name: 'hoist-secret-key'
  properties: { value: secretKey }
}

resource apiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(apiKey)) {
  parent: vault
  name: 'hoist-api-key'
  properties: { value: apiKey }
}

// A Key Vault reference, resolved by the platform with keyVaultReferenceIdentity; '' when unset.
var targetPasswordReference = empty(targetPassword) ? '' : '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=hoist-target-password)'
var secretKeyReference = empty(secretKey) ? '' : '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=hoist-secret-key)'
var apiKeyReference = empty(apiKey) ? '' : '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=hoist-api-key)'

// ---- monitoring -----------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-hoist-${suffix}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-hoist-${suffix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry is sent with the identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
    DisableLocalAuth: true
  }
}

resource insightsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// ---- the Function App ---------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-hoist-${suffix}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-hoist-${suffix}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      // Every setting Hoist reads (test/infra/bicep.test.ts checks this list against the code).
      appSettings: [
        // The host's storage and Hoist's tables and queue, with the identity (no key).
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        // DefaultAzureCredential's choice of identity, for registry tokens.
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD;ClientId=${identity.properties.clientId}' }
        { name: 'HOIST_TARGET_REGISTRY', value: targetRegistry }
        { name: 'HOIST_TARGET_USERNAME', value: targetUsername }
        { name: 'HOIST_TARGET_PASSWORD', value: targetPasswordReference }
        { name: 'HOIST_SECRET_KEY', value: secretKeyReference }
        { name: 'HOIST_API_KEY', value: apiKeyReference }
        { name: 'HOIST_ALLOWED_SOURCES', value: allowedSources }
        { name: 'HOIST_ALLOWED_PRIVATE_REGISTRIES', value: allowedPrivateRegistries }
        { name: 'HOIST_TIME_BUDGET_SECONDS', value: timeBudgetSeconds }
        { name: 'HOIST_JOB_LEASE_SECONDS', value: jobLeaseSeconds }
        { name: 'HOIST_MAX_MANIFESTS', value: maxManifests }
        { name: 'HOIST_MAX_BLOB_BYTES', value: maxBlobBytes }
        { name: 'HOIST_CHUNK_SIZE_BYTES', value: chunkSizeBytes }
        { name: 'HOIST_CONCURRENCY', value: concurrency }
        { name: 'HOIST_RETRY_ATTEMPTS', value: retryAttempts }
        { name: 'HOIST_MAX_REQUESTS_PER_HOST', value: maxRequestsPerHost }
        // Lab settings, off in Azure: registries over plain HTTP or unverified TLS, extra CAs.
        { name: 'HOIST_INSECURE_REGISTRIES', value: '' }
        { name: 'HOIST_HTTPS_REGISTRIES', value: '' }
        { name: 'HOIST_TLS_SKIP_VERIFY', value: '' }
        { name: 'HOIST_CA_FILE', value: '' }
        // npm start's local OCI layouts: never on Azure (the app refuses to start without a registry).
        { name: 'HOIST_TARGET_LAYOUTS', value: '' }
        { name: 'HOIST_JOBS_TABLE', value: 'hoistjobs' }
        { name: 'HOIST_CHECKPOINTS_TABLE', value: 'hoistcheckpoints' }
        { name: 'HOIST_ACR_REGISTRIES', value: acrRegistries }
        { name: 'HOIST_ACR_AUDIENCE', value: acrAudience }
        { name: 'HOIST_ARM_ENDPOINT', value: empty(armEndpoint) ? environment().resourceManager : armEndpoint }
        { name: 'HOIST_ARM_AUDIENCE', value: armAudience }
        { name: 'HOIST_WATCHES_TABLE', value: 'hoistwatches' }
        { name: 'HOIST_RESYNC_SCHEDULE', value: empty(resyncSchedule) ? '0 */15 * * * *' : resyncSchedule }
        { name: 'HOIST_RESYNC_CONCURRENCY', value: resyncConcurrency }
        { name: 'HOIST_RATE_LIMIT_RESERVE', value: rateLimitReserve }
      ]
    }
  }
  dependsOn: [
    storageRoles
    vaultRole
    insightsRole
    packageContainer
  ]
}

module registryAccess 'modules/registry-access.bicep' = if (!empty(targetNames) || !empty(sourceNames)) {
  name: 'hoist-registry-access'
  scope: resourceGroup(registryGroup)
  params: {
    principalId: identity.properties.principalId
    targetRegistryNames: targetNames
    targetRole: targetRegistryRole
    sourceRegistryNames: sourceNames
  }
}

module upstreamEvents 'modules/upstream-events.bicep' = if (!empty(upstreamRegistryName)) {
  name: 'hoist-upstream-events'
  scope: resourceGroup(registryGroup)
  params: {
    registryName: upstreamRegistryName
    functionAppId: app.id
  }
}

output AZURE_FUNCTION_APP_NAME string = app.name
output AZURE_FUNCTION_APP_URL string = 'https://${app.properties.defaultHostName}'
output AZURE_CLIENT_ID string = identity.properties.clientId
output AZURE_STORAGE_ACCOUNT string = storage.name
output AZURE_KEY_VAULT_NAME string = vault.name
